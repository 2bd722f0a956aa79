import type { Torrent, Wire } from 'webtorrent'
import type { Digest } from '../oci/digest.js'
import type { SignalOptions } from '../util/abort.js'
import type { BufferPool } from '../util/buffer-pool.js'
import { requestWholePieces, type FetchedPiece } from './bt-internals.js'
import { handshakePort } from './extended-handshake.js'
import { pieceHash, type Metainfo } from './metainfo.js'
import type { PieceVerifier } from './piece-verifier.js'

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
  /** `onBytes` is called as parts of the answer arrive. The buffer is taken from the node's piece memory before the call returns. */
  fetchPiece(peer: { host: string; port: number }, piece: { digest: Digest; start: number; length: number }, options?: SignalOptions & { onBytes?: () => void }): Promise<Buffer>
}

const overHttp = new WeakSet<Wire>()
/** Whole pieces being fetched over HTTP for each download, over all its wires. */
const fetching = new WeakMap<Torrent, number>()

/** Whether this node currently asks the peer of this wire for whole pieces over HTTP. */
export function fetchesOverHttp(wire: Wire): boolean {
  return overHttp.has(wire)
}

/** Tells peers on this wire where to fetch whole pieces from this node. */
export function offerHttpPieces(wire: Wire, port: number): void {
  wire.extendedHandshake[HTTP_PIECES_KEY] = port
}

/** The registry port the peer offered pieces on, if it did. */
export function offeredHttpPort(wire: Wire): number | undefined {
  return handshakePort(wire, HTTP_PIECES_KEY)
}

export interface HttpPiecesInit {
  metainfo: Pick<Metainfo, 'digest' | 'pieceLength' | 'length' | 'pieces'>
  torrent: Torrent
  fetcher: PieceFetcher
  /** Checks whole pieces off the main thread; none: webtorrent checks them. */
  verifier?: PieceVerifier | undefined
  /** Called with each whole piece the verifier checked, and whether it matched. */
  onChecked?: (matches: boolean) => void
  port: number
  /** The node's piece memory: a download with a piece in flight starts another only while there is room. */
  memory?: Pick<BufferPool, 'hasRoomFor' | 'released'> | undefined
  /** Called once if an HTTP request fails; the wire then goes back to 16 KiB blocks. */
  onFallback: (why: Error) => void
}

/**
 * Turns the wire's piece requests into HTTP range requests to the peer's registry API: webtorrent
 * treats a `webSeed` wire as one that takes whole remaining pieces, a few at a time. A whole
 * piece is checked against its SHA-1 by the verifier, off the main thread; a part of a piece, a
 * piece that failed there, or any piece without a verifier, goes through webtorrent's own check
 * (which convicts the sender of a bad one). Choke, interest and have messages stay on the wire.
 * Any failure to fetch puts the wire back to ordinary block requests. Past the node's piece
 * memory, a download fetches one piece at a time until memory is given back: it always moves on,
 * and however many downloads and peers there are, the pieces in memory stay near the limit.
 */
export function fetchPiecesOverHttp(wire: Wire, init: HttpPiecesInit): void {
  const inFlight = new Set<AbortController>()
  const host = wire.remoteAddress
  const { digest, pieceLength } = init.metainfo
  let restoreBlocks: (() => void) | undefined
  const fallBack = (why: Error): void => {
    if (!overHttp.delete(wire)) return
    restoreBlocks?.()
    init.onFallback(why)
  }
  wire.once('close', () => {
    overHttp.delete(wire)
    for (const controller of inFlight) controller.abort(new Error('wire closed'))
  })
  overHttp.add(wire)
  restoreBlocks = requestWholePieces(wire, init.torrent, async (index, offset, length, onProgress) => {
    const controller = new AbortController()
    inFlight.add(controller)
    let data: Buffer
    let counted = false
    try {
      // Checked again right before the fetch takes its buffer, with no await between (a buffer given
      // back wakes every waiter). Each one given back is progress for the wire's request timeout:
      // the wait is this node's, not the peer's silence.
      while (init.memory && (fetching.get(init.torrent) ?? 0) > 0 && !init.memory.hasRoomFor(length)) {
        await init.memory.released({ signal: controller.signal })
        controller.signal.throwIfAborted()
        onProgress()
      }
      fetching.set(init.torrent, (fetching.get(init.torrent) ?? 0) + 1)
      counted = true
      data = await init.fetcher.fetchPiece({ host, port: init.port }, { digest, start: index * pieceLength + offset, length },
        { signal: controller.signal, onBytes: onProgress })
    } catch (err) {
      if (!controller.signal.aborted) fallBack(err as Error)
      throw err
    } finally {
      inFlight.delete(controller)
      if (counted) fetching.set(init.torrent, fetching.get(init.torrent)! - 1)
    }
    return check(init, index, offset, data)
  })
}

/** A whole piece goes to the verifier; anything else is left to webtorrent. */
function check(init: HttpPiecesInit, index: number, offset: number, data: Buffer): FetchedPiece {
  const { metainfo, verifier, onChecked } = init
  const whole = offset === 0 && data.length === Math.min(metainfo.pieceLength, metainfo.length - index * metainfo.pieceLength)
  if (!verifier || !whole) return { data }
  const matches = verifier.check(data, pieceHash(metainfo, index))
  matches.then((match) => onChecked?.(match), () => {})
  return { data, matches }
}
