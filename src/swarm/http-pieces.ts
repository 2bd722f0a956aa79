import type { Wire } from 'webtorrent'
import type { Digest } from '../oci/digest.js'
import type { SignalOptions } from '../util/abort.js'

/**
 * BEP 10 extended-handshake key: the TCP port of the node's registry API, where it serves whole
 * pieces it holds over HTTP. Nodes that do not know the key ignore it and trade 16 KiB blocks.
 */
export const HTTP_PIECES_KEY = 'shoal_http'
/** Bytes of whole pieces asked of one peer over HTTP at once (webtorrent's web-seed pipeline): at most 4 pieces, at least one. */
export const PIECE_BYTES_IN_FLIGHT = 8 * 1024 * 1024

/** Whole pieces asked of one peer at once: 4 of 1 MiB or 256 KiB, 2 of 4 MiB. */
export function piecesInFlight(pieceLength: number): number {
  return Math.max(1, Math.min(4, Math.floor(PIECE_BYTES_IN_FLIGHT / pieceLength)))
}

/** Fetches `length` bytes of a blob at `start` from a peer's registry API. */
export interface PieceFetcher {
  /** `onBytes` is called as parts of the answer arrive. */
  fetchPiece(peer: { host: string; port: number }, piece: { digest: Digest; start: number; length: number }, options?: SignalOptions & { onBytes?: () => void }): Promise<Buffer>
}

type RequestCallback = (err: Error | null, data?: Buffer) => void
interface PendingRequest { piece: number; offset: number; length: number; callback: RequestCallback }

/** The parts of bittorrent-protocol's Wire (not its public API) that whole-piece requests replace. */
interface WireInternals {
  type: string
  destroyed?: boolean
  peerChoking: boolean
  requests: PendingRequest[]
  downloaded: number
  extendedHandshake: Record<string, unknown>
  peerExtendedHandshake?: Record<string, unknown>
  downloadSpeed(bytes?: number): number
  request(index: number, offset: number, length: number, cb: RequestCallback): void
  _timeout: unknown
  _resetTimeout(setAgain: boolean): void
}

const overHttp = new WeakSet<Wire>()

/** Whether this node currently asks the peer of this wire for whole pieces over HTTP. */
export function fetchesOverHttp(wire: Wire): boolean {
  return overHttp.has(wire)
}

/** Tells peers on this wire where to fetch whole pieces from this node. */
export function offerHttpPieces(wire: Wire, port: number): void {
  (wire as unknown as WireInternals).extendedHandshake[HTTP_PIECES_KEY] = port
}

/** Whether the peer's extended handshake (BEP 10) has arrived. */
export function hasExtendedHandshake(wire: Wire): boolean {
  const handshake = (wire as unknown as WireInternals).peerExtendedHandshake
  return handshake !== undefined && Object.keys(handshake).length > 0
}

/** The registry port the peer offered pieces on, if it did. */
export function offeredHttpPort(wire: Wire): number | undefined {
  const port = (wire as unknown as WireInternals).peerExtendedHandshake?.[HTTP_PIECES_KEY]
  return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined
}

export interface HttpPiecesInit {
  digest: Digest
  pieceLength: number
  fetcher: PieceFetcher
  port: number
  /** Called once if an HTTP request fails; the wire then goes back to 16 KiB blocks. */
  onFallback: (why: Error) => void
}

/**
 * Turns the wire's piece requests into HTTP range requests to the peer's registry API: webtorrent
 * treats a `webSeed` wire as one that takes whole remaining pieces, a few at a time, and still
 * verifies each piece's SHA-1 before storing it. Choke, interest and have messages stay on the
 * wire. Any failure puts the wire back to ordinary block requests.
 */
export function fetchPiecesOverHttp(wire: Wire, init: HttpPiecesInit): void {
  const internals = wire as unknown as WireInternals
  const blockType = internals.type
  const inFlight = new Set<AbortController>()
  const host = wire.remoteAddress
  const fallBack = (why: Error): void => {
    if (!overHttp.delete(wire)) return
    internals.type = blockType
    delete (internals as Partial<WireInternals>).request
    init.onFallback(why)
  }
  wire.once('close', () => {
    overHttp.delete(wire)
    for (const controller of inFlight) controller.abort(new Error('wire closed'))
  })
  overHttp.add(wire)
  internals.type = 'webSeed'
  internals.request = (index, offset, length, callback) => {
    if (internals.destroyed) return callback(new Error('wire is closed'))
    if (internals.peerChoking) return callback(new Error('peer is choking'))
    const pending: PendingRequest = { piece: index, offset, length, callback }
    internals.requests.push(pending)
    if (!internals._timeout) internals._resetTimeout(true)
    const controller = new AbortController()
    inFlight.add(controller)
    const settle = (err: Error | null, data?: Buffer): void => {
      inFlight.delete(controller)
      // bittorrent-protocol calls back every request itself when the peer chokes or the wire closes.
      const at = internals.requests.indexOf(pending)
      if (at < 0) return
      internals.requests.splice(at, 1)
      internals._resetTimeout(!internals.peerChoking && !internals.destroyed)
      if (data) {
        internals.downloaded += data.length
        internals.downloadSpeed(data.length)
        wire.emit('download', data.length)
      }
      callback(err, data)
      if (data) wire.emit('piece', index, offset, data)
    }
    init.fetcher.fetchPiece({ host, port: init.port }, { digest: init.digest, start: index * init.pieceLength + offset, length },
      // Bytes arriving are progress: the wire's request timeout measures silence, not a whole piece's time.
      { signal: controller.signal, onBytes: () => internals._resetTimeout(true) })
      .then((data) => settle(null, data), (err: Error) => {
        if (!controller.signal.aborted) fallBack(err)
        settle(err)
      })
  }
}
