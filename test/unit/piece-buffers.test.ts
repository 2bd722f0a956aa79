import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { OciLayoutContentProvider } from '../../src/content/oci-layout.js'
import { PIECES_PATH } from '../../src/protocol/peer-api.js'
import { BufferPool, POOL_FREE_BYTES } from '../../src/util/buffer-pool.js'
import { ManualClock } from '../support/clock.js'
import { buildImage, writeOciLayout } from '../support/images.js'
import { startRegistryApp, type RunningRegistry } from '../support/registry-app.js'

const PIECE = 4 * 1024 * 1024
const HEADER_END = Buffer.from('\r\n\r\n')
const STALLED = 4

/** The bodies of consecutive HTTP answers with Content-Length. */
function bodiesOf(stream: Buffer): { status: string; body: Buffer }[] {
  const answers = []
  for (let at = 0; at < stream.length;) {
    const headerEnd = stream.indexOf(HEADER_END, at)
    const head = stream.subarray(at, headerEnd).toString()
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1])
    const bodyStart = headerEnd + HEADER_END.length
    answers.push({ status: head.slice(0, 12), body: stream.subarray(bodyStart, bodyStart + length) })
    at = bodyStart + length
  }
  return answers
}

/**
 * Pipelined raw requests whose answers this side does not read until told: more than the socket
 * buffers hold, so the server's writes stay pending.
 */
function stalledPieceRequests(port: number, path: string, ranges: string[]): { socket: Socket; readAll: () => Promise<Buffer> } {
  const socket = connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  ranges.forEach((range, i) => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: ${range}\r\n${i === ranges.length - 1 ? 'Connection: close\r\n' : ''}\r\n`))
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.pause()
  return {
    socket,
    readAll: () => new Promise((resolve, reject) => {
      socket.once('end', () => resolve(Buffer.concat(chunks))).once('error', reject)
      socket.resume()
    }),
  }
}

describe('pooled piece buffers', () => {
  const image = buildImage({ registry: 'registry.test', repository: 'pool/app', tag: 'v1', layerSizes: [12 * PIECE] })
  const layer = image.layers[0]!
  let dir: string
  let registry: RunningRegistry

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-pieces-'))
    await writeOciLayout(dir, [image])
    registry = await startRegistryApp(new OciLayoutContentProvider(dir))
  })
  after(async () => {
    await registry.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('a slow peer gets its piece intact while other requests reuse the pool', async () => {
    const path = `${PIECES_PATH}${layer.digest}`
    const slow = stalledPieceRequests(registry.port, path, Array.from({ length: STALLED }, (_, i) => `bytes=${i * PIECE}-${(i + 1) * PIECE - 1}`))
    try {
      // Long enough for the server to read the piece and fill the socket buffers with its start.
      await sleep(300)
      for (let round = 0; round < 3 * (POOL_FREE_BYTES / PIECE); round++) {
        const start = PIECE * (STALLED + (round % (12 - STALLED)))
        const response = await fetch(`${registry.url}${path}`, { headers: { range: `bytes=${start}-${start + PIECE - 1}` } })
        assert.equal(response.status, 206)
        assert.ok(Buffer.from(await response.arrayBuffer()).equals(layer.bytes.subarray(start, start + PIECE)), `piece at ${start}`)
      }
      const answers = bodiesOf(await slow.readAll())
      assert.equal(answers.length, STALLED)
      answers.forEach(({ status, body }, i) => {
        assert.equal(status, 'HTTP/1.1 206')
        assert.ok(body.equals(layer.bytes.subarray(i * PIECE, (i + 1) * PIECE)), `the slow peer received other bytes for piece ${i}`)
      })
    } finally {
      slow.socket.destroy()
    }
  })

  it('hands out a buffer again only after it was released, and none outside its sizes', () => {
    const pool = new BufferPool()
    const first = pool.acquire(1000)!
    const second = pool.acquire(1000)!
    assert.notEqual(second.buffer, first.buffer)
    pool.release(first.subarray(10))
    pool.release(first)
    const third = pool.acquire(900)!
    const fourth = pool.acquire(900)!
    assert.equal(third.buffer, first.buffer)
    assert.notEqual(fourth.buffer, first.buffer)
    assert.equal(third.length, 900)
    pool.release(Buffer.alloc(1000))
    assert.notEqual(pool.acquire(1000)!.buffer, first.buffer)
    assert.equal(pool.acquire(0), undefined)
    assert.equal(pool.acquire(PIECE + 1), undefined)
  })

  it('keeps at most its free bytes, and lets them go when nothing was asked of it for a while', () => {
    const clock = new ManualClock()
    const pool = new BufferPool({ clock }, { freeBytes: 2 * PIECE, idleMs: 1000 })
    pool.start()
    try {
      const taken = [pool.acquire(PIECE)!, pool.acquire(PIECE)!, pool.acquire(PIECE)!]
      for (const buffer of taken) pool.release(buffer)
      assert.equal(pool.heldBytes, 2 * PIECE)
      clock.advance(999)
      assert.equal(pool.heldBytes, 2 * PIECE)
      clock.advance(1001)
      assert.equal(pool.heldBytes, 0)
    } finally {
      pool.stop()
      pool.stop()
    }
  })

  it('counts the bytes it handed out until they come back, once each, and wakes a waiter for room when they do', async () => {
    const pool = new BufferPool({}, { leasedBytes: 2 * PIECE })
    assert.ok(pool.hasRoomFor(8 * PIECE), 'with nothing handed out, any size fits')
    const first = pool.acquire(PIECE)!
    const small = pool.acquire(1000)!
    assert.equal(pool.leasedBytes, PIECE + 16 * 1024, 'counted by size class')
    assert.ok(!pool.hasRoomFor(PIECE))
    let woken = false
    const waiting = pool.released().then(() => { woken = true })
    pool.release(small.subarray(10))
    await waiting
    assert.ok(woken)
    pool.release(small)
    assert.equal(pool.leasedBytes, PIECE, 'a second release changes nothing')
    assert.ok(pool.hasRoomFor(PIECE))
    pool.release(first)
    assert.equal(pool.leasedBytes, 0)
    const aborted = new AbortController()
    const given = pool.released({ signal: aborted.signal })
    aborted.abort()
    await given
  })

  it('stops counting a buffer handed out and never given back once it is collected', async () => {
    setFlagsFromString('--expose-gc')
    const collect = runInNewContext('gc') as () => void
    const pool = new BufferPool({}, { leasedBytes: PIECE })
    ;(() => { pool.acquire(PIECE) })()
    assert.equal(pool.leasedBytes, PIECE)
    for (let round = 0; round < 20 && pool.leasedBytes > 0; round++) {
      collect()
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    assert.equal(pool.leasedBytes, 0)
  })
})
