import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import Protocol from 'bittorrent-protocol'
import type { Wire } from 'webtorrent'
import { fetchesOverHttp, fetchPiecesOverHttp, HTTP_PIECES_KEY, offeredHttpPort, offerHttpPieces, type PieceFetcher } from '../../src/swarm/http-pieces.js'
import { parseDigest } from '../../src/oci/digest.js'

const DIGEST = parseDigest(`sha256:${'a'.repeat(64)}`)
type Callback = (err: Error | null, data?: Uint8Array) => void

/** A real bittorrent-protocol wire, unchoked, with a remote address as webtorrent sets it. */
function unchokedWire(): Wire & { requests: unknown[]; peerChoking: boolean; type: string; request(index: number, offset: number, length: number, cb: Callback): void } {
  const wire = new Protocol() as unknown as ReturnType<typeof unchokedWire>
  Object.assign(wire, { peerChoking: false, remoteAddress: '127.0.0.9', type: 'tcpOutgoing' })
  return wire
}

/** A fetcher whose answers the test settles by hand. */
function manualFetcher() {
  const calls: { start: number; length: number; resolve(data: Buffer): void; reject(err: Error): void; signal: AbortSignal | undefined }[] = []
  const fetcher: PieceFetcher = {
    fetchPiece: (_peer, piece, options = {}) => new Promise((resolve, reject) => calls.push({ ...piece, resolve, reject, signal: options.signal })),
  }
  return { fetcher, calls }
}

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
    fetchPiecesOverHttp(wire, { digest: DIGEST, pieceLength: 1 << 20, fetcher, port: 5000, onFallback: () => assert.fail('no fallback') })
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
    fetchPiecesOverHttp(wire, { digest: DIGEST, pieceLength: 1 << 20, fetcher, port: 5000, onFallback: () => {} })
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
    fetchPiecesOverHttp(wire, { digest: DIGEST, pieceLength: 1 << 20, fetcher, port: 5000, onFallback: (err) => fallbacks.push(err.message) })
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
})
