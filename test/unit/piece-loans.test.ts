import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createServer, get, type IncomingMessage, type Server } from 'node:http'
import { before, describe, it } from 'node:test'
import { SwarmBlobStream } from '../../src/swarm/blob-stream.js'
import { RECENT_PIECES_BYTES } from '../../src/swarm/download.js'
import { blobWithMetainfo, downloadOf, pieceOf } from '../support/swarm-fixtures.js'

const KiB = 1024
const SIZE = 24 * 1024 * KiB

describe('kept pieces lent to a response', () => {
  let blob: Awaited<ReturnType<typeof blobWithMetainfo>>
  before(async () => { blob = await blobWithMetainfo(SIZE) })

  /**
   * A download whose pool scribbles over what is given back at once, as handing it out again
   * would; `released` counts the stored pieces given back (reads from the file are lent too).
   */
  async function scribblingDownload() {
    const stored = new Set<ArrayBufferLike>()
    const released: Buffer[] = []
    const pool = {
      acquire: (length: number) => Buffer.allocUnsafeSlow(length),
      release: (bytes: Buffer) => {
        if (stored.has(bytes.buffer)) released.push(bytes)
        bytes.fill(0xee)
      },
    }
    const subject = await downloadOf(blob.bytes, blob.metainfo, { pool })
    const store = (piece: number, data: Buffer): Promise<void> => {
      stored.add(data.buffer)
      return subject.store(piece, data)
    }
    return { ...subject, store, released }
  }

  it('go back only once the kernel has every byte: a client that stops reading gets the exact blob when it reads on', async () => {
    const { download, store, cleanup, released } = await scribblingDownload()
    let server: Server | undefined
    try {
      server = createServer((_req, res) => {
        res.writeHead(200, { 'content-length': String(SIZE) }).flushHeaders()
        new SwarmBlobStream(download, { start: 0, end: SIZE - 1 }, 10_000).pipe(res)
      })
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
      const port = (server.address() as { port: number }).port
      const response = await new Promise<IncomingMessage>((resolve) => get({ host: '127.0.0.1', port, path: '/' }, resolve))
      response.pause()
      const pieces = Math.ceil(SIZE / blob.metainfo.pieceLength)
      // Each piece in its own memory, as fetched pieces are.
      for (let piece = 0; piece < pieces; piece++) {
        await store(piece, Buffer.from(pieceOf(blob.bytes, blob.metainfo, piece)))
        await new Promise((resolve) => setImmediate(resolve))
      }
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

