import assert from 'node:assert/strict'
import { PassThrough, Readable } from 'node:stream'
import { describe, it } from 'node:test'
import { HolderPools } from '../../src/mirror/holder-pool.js'
import { HolderHealth } from '../../src/mirror/holder-health.js'
import { collectChunks, httpBlobChunks } from '../../src/mirror/http-source.js'
import type { PeerClient } from '../../src/mirror/peer-client.js'
import { sha256Digest } from '../../src/oci/digest.js'
import type { ByteRange } from '../../src/oci/range.js'
import { MemoryRoutingNetwork } from '../../src/routing/memory.js'
import { DigestMismatchError } from '../../src/swarm/blob-stream.js'
import { silentLogger } from '../support/registry-app.js'
import { HttpTransfers } from '../../src/mirror/http-transfer.js'
import { TransferLedger } from '../../src/observe/ledger.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { systemClock } from '../../src/util/clock.js'
import { ManualClock } from '../support/clock.js'
import { eventually } from '../support/eventually.js'

type Behaviour = (range: ByteRange | undefined) => Readable | undefined

/** Holders on ports 1, 2, … each answering openBlob as its behaviour says. */
function holders(digest: string, behaviours: Behaviour[]) {
  const network = new MemoryRoutingNetwork()
  behaviours.forEach((_, index) => network.router({ host: '10.0.0.1', port: index + 1 }).advertise([digest]))
  const asked: string[] = []
  const peers = {
    async openBlob(peer: { port: number }, blob: { range?: ByteRange | undefined }) {
      asked.push(`${peer.port}:${blob.range ? `${blob.range.start}-${blob.range.end}` : 'all'}`)
      return behaviours[peer.port - 1]!(blob.range)
    },
  } as unknown as PeerClient
  const health = new HolderHealth()
  const search = new HolderPools({ router: network.router({ host: '10.0.0.9', port: 9 }), health, logger: silentLogger }, { stallMs: 1000 }).pool(digest)
  return { peers, search, asked, health }
}

const bytes = Buffer.from('0123456789'.repeat(1000))
const digest = sha256Digest(bytes)
const serve = (data: Buffer): Behaviour => (range) => Readable.from([range ? data.subarray(range.start, range.end + 1) : data])

describe('blob bytes from holders over HTTP', () => {
  it('takes the whole blob from the first holder and counts the bytes per peer', async () => {
    const { peers, search } = holders(digest, [serve(bytes)])
    const counted = new Map<number, number>()
    const chunks = httpBlobChunks({ peers, holders: search, logger: silentLogger, clock: systemClock, onBytes: (peer, n) => counted.set(peer.port, (counted.get(peer.port) ?? 0) + n) },
      { name: 'app', digest, size: bytes.length, range: { start: 0, end: bytes.length - 1 }, stallMs: 1000 })
    assert.ok((await collectChunks(chunks)).equals(bytes))
    assert.deepEqual([...counted], [[1, bytes.length]])
  })

  it('continues from the same offset with the next holder when one fails midway', async () => {
    const failing: Behaviour = () => Readable.from((async function* () {
      yield bytes.subarray(0, 4000)
      throw new Error('connection reset')
    })())
    const { peers, search, asked } = holders(digest, [failing, serve(bytes)])
    const chunks = httpBlobChunks({ peers, holders: search, logger: silentLogger, clock: systemClock, onBytes: () => {} },
      { name: 'app', digest, size: bytes.length, range: { start: 0, end: bytes.length - 1 }, stallMs: 1000 })
    assert.ok((await collectChunks(chunks)).equals(bytes))
    assert.deepEqual(asked, ['1:all', `2:4000-${bytes.length - 1}`])
  })

  it('skips a holder that no longer has the blob', async () => {
    const { peers, search } = holders(digest, [() => undefined, serve(bytes)])
    const chunks = httpBlobChunks({ peers, holders: search, logger: silentLogger, clock: systemClock, onBytes: () => {} },
      { name: 'app', digest, size: bytes.length, range: { start: 10, end: 19 }, stallMs: 1000 })
    assert.equal((await collectChunks(chunks)).toString(), '0123456789')
  })

  it('never releases the last bytes of a whole blob that does not match its digest', async () => {
    const wrong = Buffer.from(bytes)
    wrong[5000] = 0
    const { peers, search } = holders(digest, [serve(wrong)])
    const released: Buffer[] = []
    const chunks = httpBlobChunks({ peers, holders: search, logger: silentLogger, clock: systemClock, onBytes: () => {} },
      { name: 'app', digest, size: bytes.length, range: { start: 0, end: bytes.length - 1 }, stallMs: 1000 })
    await assert.rejects(async () => { for await (const chunk of chunks) released.push(chunk) }, DigestMismatchError)
    assert.ok(Buffer.concat(released).length < bytes.length)
  })

  it('bans a lone holder whose bytes fail the digest; fetched again, the blob comes whole from an honest holder', async () => {
    const wrong = Buffer.from(bytes)
    wrong[5000] = 0
    const { peers, search, asked, health } = holders(digest, [serve(wrong), serve(bytes)])
    const transfers = new HttpTransfers({ peers, ledger: new TransferLedger(), metrics: createMetricsRegistry().metrics, logger: silentLogger, clock: systemClock }, { stallMs: 1000 })
    const fetched = await transfers.fetchWhole({ name: 'app', digest, signal: new AbortController().signal }, search, bytes.length)
    assert.ok(fetched.equals(bytes))
    assert.ok(health.isBanned({ host: '10.0.0.1', port: 1 }))
    assert.deepEqual(asked, ['1:all', '2:all'])
  })

  it('drops a holder that stops sending exactly when the stall timeout passes on the clock; the next continues from there', async () => {
    const clock = new ManualClock()
    const opened: PassThrough[] = []
    const behaviours: Behaviour[] = [() => {
      const body = new PassThrough()
      body.write(bytes.subarray(0, 4000))
      opened.push(body)
      return body
    }, serve(bytes)]
    const { peers, search, asked } = holders(digest, behaviours)
    let received = 0
    const chunks = httpBlobChunks({ peers, holders: search, logger: silentLogger, clock, onBytes: (_, n) => { received += n } },
      { name: 'app', digest, size: bytes.length, range: { start: 0, end: bytes.length - 1 }, stallMs: 5000 })
    const collected = collectChunks(chunks)
    await eventually('the first 4000 bytes', () => received === 4000, 5_000, 5)
    clock.advance(4999)
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(asked, ['1:all'], 'dropped before the stall timeout')
    clock.advance(1)
    // Bounded below the stall timeout, so only the clock can have moved it on.
    await eventually('the next holder asked', () => asked.length === 2, 2_000, 5)
    assert.ok((await collected).equals(bytes))
    assert.deepEqual(asked, ['1:all', `2:4000-${bytes.length - 1}`])
    assert.ok(opened[0]!.destroyed, 'the stalled body was not closed')
  })
})
