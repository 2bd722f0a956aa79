import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createServer, get, type IncomingMessage, type Server } from 'node:http'
import { before, describe, it } from 'node:test'
import { SwarmBlobStream } from '../../src/swarm/blob-stream.js'
import { READ_BATCH_BYTES, RECENT_PIECES_BYTES, type Download } from '../../src/swarm/download.js'
import { blobWithMetainfo, downloadOf, pieceOf } from '../support/swarm-fixtures.js'

const KiB = 1024
const MiB = 1024 * KiB
const SIZE = 24 * 1024 * KiB
/** Far more than the kernel's socket buffers on loopback and a response's queue hold. */
const BIG = 60 * 1024 * KiB

describe('kept pieces lent to a response', () => {
  let blob: Awaited<ReturnType<typeof blobWithMetainfo>>
  before(async () => { blob = await blobWithMetainfo(SIZE) })

  /**
   * A download whose pool scribbles over what is given back at once, as handing it out again
   * would; `released` counts the stored pieces given back (reads from the file are lent too).
   */
  async function scribblingDownload(of = blob) {
    const stored = new Set<ArrayBufferLike>()
    const released: Buffer[] = []
    /** Memory of the pool's and of stored pieces not given back yet. */
    const held = new Map<ArrayBufferLike, number>()
    const pool = {
      acquire: (length: number) => {
        const bytes = Buffer.allocUnsafeSlow(length)
        held.set(bytes.buffer, length)
        return bytes
      },
      release: (bytes: Buffer) => {
        if (stored.has(bytes.buffer)) released.push(bytes)
        held.delete(bytes.buffer)
        bytes.fill(0xee)
      },
    }
    const subject = await downloadOf(of.bytes, of.metainfo, { pool })
    const store = (piece: number, data: Buffer): Promise<void> => {
      stored.add(data.buffer)
      held.set(data.buffer, data.length)
      return subject.store(piece, data)
    }
    const heldBytes = (): number => [...held.values()].reduce((sum, length) => sum + length, 0)
    return { ...subject, store, released, heldBytes }
  }

  /** An HTTP server answering with the whole blob from `download`, and a paused response to it. */
  async function servedPaused(download: Download, size: number): Promise<{ server: Server; response: IncomingMessage }> {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(size) }).flushHeaders()
      new SwarmBlobStream(download, { start: 0, end: size - 1 }, 10_000).pipe(res)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    const response = await new Promise<IncomingMessage>((resolve) => get({ host: '127.0.0.1', port, path: '/' }, resolve))
    response.pause()
    return { server, response }
  }

  /** Each piece in its own memory, as fetched pieces are, stored one by one. */
  async function storeEach(store: (piece: number, data: Buffer) => Promise<void>, of: typeof blob): Promise<number> {
    const pieces = Math.ceil(of.bytes.length / of.metainfo.pieceLength)
    for (let piece = 0; piece < pieces; piece++) {
      await store(piece, Buffer.from(pieceOf(of.bytes, of.metainfo, piece)))
      await new Promise((resolve) => setImmediate(resolve))
    }
    return pieces
  }

  it('go back only once the kernel has every byte: a client that stops reading gets the exact blob when it reads on', async () => {
    const { download, store, cleanup, released } = await scribblingDownload()
    let server: Server | undefined
    try {
      const served = await servedPaused(download, SIZE)
      server = served.server
      const response = served.response
      const pieces = await storeEach(store, blob)
      await new Promise((resolve) => setTimeout(resolve, 100))
      const evicted = pieces - RECENT_PIECES_BYTES / blob.metainfo.pieceLength
      assert.ok(released.length < evicted, `pieces still queued for the stalled client are held (${released.length} of ${evicted} evicted given back)`)
      const hash = createHash('sha256')
      response.on('data', (chunk: Buffer) => hash.update(chunk))
      response.resume()
      await new Promise((resolve) => response.once('end', resolve))
      assert.equal(`sha256:${hash.digest('hex')}`, blob.metainfo.digest, 'no byte was overwritten before it was sent')
      await new Promise((resolve) => setTimeout(resolve, 50))
      assert.equal(released.length, evicted, 'every evicted piece went back once the response finished')
    } finally {
      server?.close()
      await cleanup()
    }
  })

  it('go back as the kernel takes their bytes, not only when the response has nothing queued', async () => {
    const big = await blobWithMetainfo(BIG)
    const { download, store, cleanup, heldBytes } = await scribblingDownload(big)
    let server: Server | undefined
    try {
      const served = await servedPaused(download, BIG)
      server = served.server
      const response = served.response
      await storeEach(store, big)
      // Every piece is in; the client reads slowly but without pause, so the kernel's buffers, the
      // stream and the response are never all empty at once. It stops after a third.
      const hash = createHash('sha256')
      let received = 0
      let throttled = true
      await new Promise<void>((resolve) => {
        response.on('data', (chunk: Buffer) => {
          hash.update(chunk)
          received += chunk.length
          if (!throttled) return
          response.pause()
          if (received < BIG / 3) setTimeout(() => response.resume(), 1)
          else resolve()
        })
        response.resume()
      })
      await new Promise((resolve) => setTimeout(resolve, 200))
      const bound = RECENT_PIECES_BYTES + 3 * READ_BATCH_BYTES
      assert.ok(heldBytes() <= bound, `${heldBytes() / MiB} MiB held for a client that has read ${(received / MiB).toFixed(1)} MiB; at most ${bound / MiB} MiB (the recent pieces, the stream's and the response's queue)`)
      throttled = false
      response.resume()
      await new Promise((resolve) => response.once('end', resolve))
      assert.equal(`sha256:${hash.digest('hex')}`, big.metainfo.digest, 'no byte was overwritten before it was sent')
    } finally {
      server?.closeAllConnections()
      server?.close()
      await cleanup()
    }
  })

  it('are not lent to a reader that is not an HTTP response: evicted pieces go back at once', async () => {
    const { download, store, cleanup, released } = await scribblingDownload()
    try {
      const stream = new SwarmBlobStream(download, { start: 0, end: SIZE - 1 }, 10_000)
      const hash = createHash('sha256')
      const read = (async () => { for await (const chunk of stream) hash.update(chunk as Buffer) })()
      const pieces = Math.ceil(SIZE / blob.metainfo.pieceLength)
      for (let piece = 0; piece < pieces; piece++) await store(piece, Buffer.from(pieceOf(blob.bytes, blob.metainfo, piece)))
      await read
      assert.equal(`sha256:${hash.digest('hex')}`, blob.metainfo.digest)
      assert.equal(released.length, pieces - RECENT_PIECES_BYTES / blob.metainfo.pieceLength)
    } finally {
      await cleanup()
    }
  })
})

