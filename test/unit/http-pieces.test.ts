import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import Protocol from 'bittorrent-protocol'
import type { Torrent, Wire } from 'webtorrent'
import { fetchesOverHttp, fetchPiecesOverHttp, HTTP_PIECES_KEY, offeredHttpPort, offerHttpPieces, type PieceFetcher } from '../../src/swarm/http-pieces.js'
import { parseDigest } from '../../src/oci/digest.js'
import { PieceVerifier } from '../../src/swarm/piece-verifier.js'
import { BufferPool } from '../../src/util/buffer-pool.js'
import { createHash } from 'node:crypto'

const DIGEST = parseDigest(`sha256:${'a'.repeat(64)}`)
const PIECE = 1 << 20
const METAINFO = { digest: DIGEST, pieceLength: PIECE, length: 8 * PIECE, pieces: Buffer.alloc(8 * 20) }
type Callback = (err: Error | null, data?: Uint8Array) => void

/** A real bittorrent-protocol wire, unchoked, with a remote address as webtorrent sets it. */
function unchokedWire(): Wire & { requests: unknown[]; peerChoking: boolean; type: string; request(index: number, offset: number, length: number, cb: Callback): void } {
  const wire = new Protocol() as unknown as ReturnType<typeof unchokedWire>
  Object.assign(wire, { peerChoking: false, remoteAddress: '127.0.0.9', type: 'tcpOutgoing' })
  return wire
}

/** The private side of a webtorrent torrent that keeping a checked piece uses, recording what happens to it. */
function fakeTorrent(log: string[] = []) {
  const pieces: unknown[] = Array.from({ length: 8 }, () => ({ assembling: true }))
  const verified = new Set<number>()
  const torrent = {
    destroyed: false, pieces,
    bitfield: { get: (index: number) => verified.has(index) },
    store: { put: (index: number, data: Buffer, cb: (err: Error | null) => void) => { log.push(`put ${index} ${data.length}`); setImmediate(() => cb(null)) } },
    wires: [{ have: (index: number) => log.push(`have ${index}`) }],
    _markVerified: (index: number) => { verified.add(index); log.push(`verified ${index}`) },
    _checkDone: () => log.push('check done'),
    _destroy: (err: Error) => log.push(`destroyed: ${err.message}`),
  }
  return { torrent: torrent as unknown as Torrent, pieces, log }
}

/** Metainfo whose piece `index` is `data`. */
function metainfoWith(index: number, data: Buffer) {
  const pieces = Buffer.alloc(8 * 20)
  createHash('sha1').update(data).digest().copy(pieces, index * 20)
  return { ...METAINFO, pieces }
}

/** A fetcher whose answers the test settles by hand; with a pool, it takes each piece's buffer from it as the node's does. */
function manualFetcher(pool?: BufferPool) {
  const calls: { start: number; length: number; resolve(data: Buffer): void; reject(err: Error): void; signal: AbortSignal | undefined; into: Buffer | undefined }[] = []
  const fetcher: PieceFetcher = {
    fetchPiece: (_peer, piece, options = {}) => {
      const into = pool?.acquire(piece.length)
      return new Promise((resolve, reject) => calls.push({ ...piece, resolve, reject, signal: options.signal, into }))
    },
  }
  return { fetcher, calls }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('whole pieces over HTTP', () => {
  it('offers the registry port in the extended handshake and reads a peer\'s offer, refusing nonsense', () => {
    const wire = unchokedWire()
    offerHttpPieces(wire, 5000)
    assert.equal((wire as unknown as { extendedHandshake: Record<string, unknown> }).extendedHandshake[HTTP_PIECES_KEY], 5000)
    for (const [offer, port] of [[5000, 5000], [0, undefined], [70000, undefined], ['5000', undefined], [1.5, undefined]] as const) {
      (wire as unknown as { peerExtendedHandshake: Record<string, unknown> }).peerExtendedHandshake = { [HTTP_PIECES_KEY]: offer }
      assert.equal(offeredHttpPort(wire), port)
    }
  })

  it('turns a request into one range of the blob and answers it once, as a piece', async () => {
    const wire = unchokedWire()
    const { fetcher, calls } = manualFetcher()
    fetchPiecesOverHttp(wire, { metainfo: METAINFO, torrent: fakeTorrent().torrent, fetcher, port: 5000, onFallback: () => assert.fail('no fallback') })
    assert.equal(wire.type, 'webSeed')
    const answers: (Uint8Array | undefined)[] = []
    const pieces: number[] = []
    wire.on('piece', (index: number) => pieces.push(index))
    wire.request(3, 16384, (1 << 20) - 16384, (err, data) => answers.push(err ? undefined : data))
    assert.deepEqual(calls.map(({ start, length }) => ({ start, length })), [{ start: 3 * (1 << 20) + 16384, length: (1 << 20) - 16384 }])
    assert.equal(wire.requests.length, 1)
    calls[0]!.resolve(Buffer.alloc(10, 7))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(answers.length, 1)
    assert.deepEqual(pieces, [3])
    assert.equal(wire.requests.length, 0)
    wire.destroy()
  })

  it('does not answer a request twice when the peer chokes before the HTTP answer, and aborts requests when the wire closes', async () => {
    const wire = unchokedWire()
    const { fetcher, calls } = manualFetcher()
    fetchPiecesOverHttp(wire, { metainfo: METAINFO, torrent: fakeTorrent().torrent, fetcher, port: 5000, onFallback: () => {} })
    const errors: string[] = []
    wire.request(0, 0, 1 << 20, (err) => errors.push(err?.message ?? 'data'))
    ;(wire as unknown as { _onChoke(): void })._onChoke()
    calls[0]!.resolve(Buffer.alloc(1 << 20))
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(errors, ['peer is choking'])
    ;(wire as unknown as { peerChoking: boolean }).peerChoking = false
    wire.request(1, 0, 1 << 20, () => {})
    wire.destroy()
    await new Promise((resolve) => setImmediate(resolve))
    assert.ok(calls[1]!.signal?.aborted)
  })

  it('goes back to block requests over the wire after an HTTP failure', async () => {
    const wire = unchokedWire()
    const { fetcher, calls } = manualFetcher()
    const fallbacks: string[] = []
    fetchPiecesOverHttp(wire, { metainfo: METAINFO, torrent: fakeTorrent().torrent, fetcher, port: 5000, onFallback: (err) => fallbacks.push(err.message) })
    const errors: string[] = []
    wire.request(0, 0, 1 << 20, (err) => errors.push(err?.message ?? 'data'))
    calls[0]!.reject(new Error('status 404'))
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(fallbacks, ['status 404'])
    assert.deepEqual(errors, ['status 404'])
    assert.equal(wire.type, 'tcpOutgoing')
    assert.equal(fetchesOverHttp(wire), false)
    assert.equal(wire.request, Protocol.prototype.request)
    wire.destroy()
  })

  it('keeps a whole piece the verifier vouches for itself: the sender is known first, then the piece is stored and verified, then webtorrent is answered', async () => {
    const verifier = new PieceVerifier({}, { threads: 1 })
    const wire = unchokedWire()
    const { fetcher, calls } = manualFetcher()
    const data = Buffer.alloc(PIECE, 5)
    const { torrent, pieces, log } = fakeTorrent()
    const checks: boolean[] = []
    fetchPiecesOverHttp(wire, { metainfo: metainfoWith(3, data), torrent, fetcher, verifier, port: 5000, onChecked: (matches) => checks.push(matches), onFallback: () => assert.fail('no fallback') })
    wire.on('piece', (index: number, _offset: number, block: Uint8Array) => log.push(`piece ${index} ${block.length}`))
    const answered = new Promise<Uint8Array | undefined>((resolve) => wire.request(3, 0, PIECE, (err, answer) => {
      log.push('answered')
      resolve(err ? undefined : answer)
    }))
    calls[0]!.resolve(data)
    const answer = await answered
    assert.deepEqual(log, [`piece 3 ${PIECE}`, `put 3 ${PIECE}`, 'verified 3', 'have 3', 'check done', 'answered'])
    assert.equal(pieces[3], null, 'webtorrent finds the piece no longer being assembled, so it does not hash it again')
    assert.ok(answer && Buffer.from(answer).equals(Buffer.alloc(PIECE, 5)))
    assert.deepEqual(checks, [true])
    wire.destroy()
    await verifier.stop()
  })

  it('hands webtorrent a piece the verifier refuses, or a part of a piece, unverified: webtorrent checks it and judges the sender', async () => {
    const verifier = new PieceVerifier({}, { threads: 1 })
    const wire = unchokedWire()
    const { fetcher, calls } = manualFetcher()
    const { torrent, pieces, log } = fakeTorrent()
    const checks: boolean[] = []
    fetchPiecesOverHttp(wire, { metainfo: metainfoWith(2, Buffer.alloc(PIECE, 1)), torrent, fetcher, verifier, port: 5000, onChecked: (matches) => checks.push(matches), onFallback: () => assert.fail('no fallback') })
    const answers: number[] = []
    const answered = (count: number) => new Promise<void>((resolve) => {
      const done = (): void => { if (answers.length === count) resolve() }
      wire.request(2, count === 1 ? 0 : 16384, count === 1 ? PIECE : PIECE - 16384, (err, data) => {
        answers.push(err ? -1 : data!.length)
        done()
      })
    })
    const first = answered(1)
    calls[0]!.resolve(Buffer.alloc(PIECE, 2))
    await first
    const second = answered(2)
    calls[1]!.resolve(Buffer.alloc(PIECE - 16384, 1))
    await second
    assert.deepEqual(answers, [PIECE, PIECE - 16384])
    assert.deepEqual(checks, [false], 'the part was not checked off the main thread')
    assert.deepEqual(log, [])
    assert.notEqual(pieces[2], null)
    wire.destroy()
    await verifier.stop()
  })

  it('hands webtorrent the piece unverified when the verification thread fails, instead of losing it', async () => {
    const verifier = new PieceVerifier({}, { threads: 1 })
    await verifier.stop()
    const wire = unchokedWire()
    const { fetcher, calls } = manualFetcher()
    const data = Buffer.alloc(PIECE, 5)
    const { torrent, log } = fakeTorrent()
    fetchPiecesOverHttp(wire, { metainfo: metainfoWith(3, data), torrent, fetcher, verifier, port: 5000, onFallback: () => assert.fail('no fallback') })
    const answered = new Promise<Uint8Array | undefined>((resolve) => wire.request(3, 0, PIECE, (err, answer) => resolve(err ? undefined : answer)))
    calls[0]!.resolve(data)
    const answer = await answered
    assert.ok(answer && Buffer.from(answer).equals(data))
    assert.deepEqual(log, [], 'webtorrent checks and keeps it')
    wire.destroy()
  })

  it('past the node\'s piece memory, a download keeps one piece in flight and starts another only as memory is given back', async () => {
    const pool = new BufferPool({}, { leasedBytes: 3 * PIECE })
    // Other transfers' pieces fill the memory.
    const held = [pool.acquire(PIECE)!, pool.acquire(PIECE)!, pool.acquire(PIECE)!]
    const { fetcher, calls } = manualFetcher(pool)
    const { torrent } = fakeTorrent()
    const wires = [unchokedWire(), unchokedWire()]
    for (const wire of wires) fetchPiecesOverHttp(wire, { metainfo: METAINFO, torrent, fetcher, port: 5000, memory: pool, onFallback: () => assert.fail('no fallback') })
    const failures: string[] = []
    for (const [index, wire] of [wires[0], wires[0], wires[1], wires[1]].entries()) wire!.request(index, 0, PIECE, (err) => { if (err) failures.push(err.message) })
    await turn()
    assert.equal(calls.length, 1, 'one piece of the download in flight, over both its wires; the rest wait for memory')
    pool.release(held[0]!)
    pool.release(held[1]!)
    await turn()
    assert.equal(calls.length, 2, 'two pieces given back: one more fetch (its buffer and the first fetch\'s make the limit)')
    assert.equal(pool.leasedBytes, 3 * PIECE)
    calls[0]!.resolve(calls[0]!.into!)
    pool.release(calls[0]!.into!)
    await turn()
    assert.equal(calls.length, 3, 'the first piece done and its buffer back: the next starts')
    wires[1]!.destroy()
    await turn()
    pool.release(held[2]!)
    await turn()
    assert.equal(calls.length, 3, 'a request still waiting when its wire closed is given up, not fetched')
    assert.equal(failures.length, 2, 'both requests of the closed wire ended')
    assert.ok(calls[2]!.signal?.aborted, 'the fetch on the closed wire is aborted')
    wires[0]!.destroy()
  })
})
