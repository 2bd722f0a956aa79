import type { Torrent, Wire } from 'webtorrent'
import { assertPinned, packageEntryUrl, PackageVersionError, type PackagePin } from '../util/packages.js'

/**
 * The one door to the private members of the BitTorrent engine: webtorrent, the
 * bittorrent-protocol Wire it makes, the torrent-piece pieces it assembles and the streamx
 * stream under each wire. Nothing else in shoal reads or replaces them. Each operation below is
 * written for the releases pinned here; `installBtPatches` refuses other ones.
 *
 * On one wire the patches go in this order, all from `PeerWires.onWire`: `gateIncoming` once
 * (the cluster-key proof, then the request cap decide), then, once the peer offered whole pieces,
 * `requestWholePieces`; `offerOnly` from the stripes when the peer turns out to be a holder.
 * On the torrent, `keepVerifiedPiece` stores and marks a piece shoal checked itself.
 */
export const BT_PINS: readonly PackagePin[] = [
  { name: 'webtorrent', version: '3.0.21', loadedBy: [] },
  { name: 'bittorrent-protocol', version: '5.0.9', loadedBy: ['webtorrent'] },
  { name: 'torrent-piece', version: '4.0.1', loadedBy: ['webtorrent'] },
  { name: 'streamx', version: '2.28.0', loadedBy: ['webtorrent', 'bittorrent-protocol'] },
]

type RequestCallback = (err: Error | null, data?: Buffer) => void
interface PendingRequest { piece: number; offset: number; length: number; callback: RequestCallback }

/** bittorrent-protocol's Wire: its private members. */
interface WireInternals {
  type: string
  destroyed?: boolean
  peerChoking: boolean
  requests: PendingRequest[]
  downloaded: number
  downloadSpeed(bytes?: number): number
  request(index: number, offset: number, length: number, cb: RequestCallback): void
  peerPieces: PieceSet
  _onRequest(index: number, offset: number, length: number): void
  _onPiece(index: number, offset: number, buffer: Uint8Array): void
  _timeout: unknown
  _resetTimeout(setAgain: boolean): void
  /** streamx: bytes pushed to the socket but not yet taken by it. */
  _readableState?: { buffered?: number }
}

interface PieceSet {
  get(index: number): boolean
  set(index: number, value?: boolean): void
  buffer: Uint8Array
}

/** torrent-piece's Piece: its private members. */
interface PieceInternals {
  length: number
  _buffer: Uint8Array[] | null
  _chunks: number
  _buffered: number
  _cancellations: unknown
  sources: unknown
  _flushed: boolean
}

const wireInternals = (wire: Wire): WireInternals => wire as unknown as WireInternals

/** A message from the peer that `gateIncoming` lets through or drops. */
export type IncomingMessage = 'request' | 'piece'

/**
 * Runs `admit` before bittorrent-protocol handles a request or piece message, before any
 * 'request' listener (webtorrent's reads the piece from disk) or piece bookkeeping sees it.
 * A message `admit` refuses is dropped; `admit` closes the wire if it should be closed.
 */
export function gateIncoming(wire: Wire, admit: (message: IncomingMessage) => boolean): void {
  const internals = wireInternals(wire)
  const onRequest = internals._onRequest.bind(wire)
  const onPiece = internals._onPiece.bind(wire)
  internals._onRequest = (index, offset, length) => {
    if (!internals.destroyed && admit('request')) onRequest(index, offset, length)
  }
  internals._onPiece = (index, offset, buffer) => {
    if (!internals.destroyed && admit('piece')) onPiece(index, offset, buffer)
  }
}

/** Bytes of answers queued on the wire that the peer's socket has not taken yet. */
export function unreadBytes(wire: Wire): number {
  return wireInternals(wire)._readableState?.buffered ?? 0
}

/** A whole-piece answer: its bytes and, when shoal checks them itself, whether they match the piece's SHA-1. */
export interface FetchedPiece {
  data: Buffer
  matches?: Promise<boolean>
}

/**
 * Makes webtorrent ask this wire for whole remaining pieces, a few at a time, as it asks a web
 * seed, and hands each request to `fetch` instead of the wire. The request ends when the bytes
 * are in, so the wire's next one starts while they are checked. A piece that shoal checked and
 * found matching is stored and marked verified here (see `keepVerifiedPiece`); any other goes
 * through webtorrent's SHA-1 check. `fetch` calls `onProgress` as bytes arrive, so the wire's
 * request timeout measures silence, not a whole piece's time. The returned function puts the
 * wire back to 16 KiB block requests.
 */
export function requestWholePieces(wire: Wire, torrent: Torrent, fetch: (index: number, offset: number, length: number, onProgress: () => void) => Promise<FetchedPiece>): () => void {
  const internals = wireInternals(wire)
  const blockType = internals.type
  internals.type = 'webSeed'
  internals.request = (index, offset, length, callback) => {
    if (internals.destroyed) return callback(new Error('wire is closed'))
    if (internals.peerChoking) return callback(new Error('peer is choking'))
    const pending: PendingRequest = { piece: index, offset, length, callback }
    internals.requests.push(pending)
    if (!internals._timeout) internals._resetTimeout(true)
    const settle = (err: Error | null, fetched?: FetchedPiece): void => {
      // bittorrent-protocol calls back every request itself when the peer chokes or the wire closes.
      const at = internals.requests.indexOf(pending)
      if (at < 0) return
      internals.requests.splice(at, 1)
      internals._resetTimeout(!internals.peerChoking && !internals.destroyed)
      if (!fetched) return callback(err)
      const { data, matches } = fetched
      internals.downloaded += data.length
      internals.downloadSpeed(data.length)
      wire.emit('download', data.length)
      // Before webtorrent sees the piece: listeners learn who sent it before it is verified or failed.
      wire.emit('piece', index, offset, data)
      if (!matches) return callback(null, data)
      matches.then((match) => match ? keepVerifiedPiece(torrent, index, data, () => callback(null, data)) : callback(null, data),
        () => callback(null, data))
    }
    fetch(index, offset, length, () => internals._resetTimeout(true)).then((fetched) => settle(null, fetched), (err: Error) => settle(err))
  }
  return () => {
    internals.type = blockType
    delete (internals as Partial<WireInternals>).request
  }
}

/** webtorrent's Torrent: its private members. */
interface TorrentInternals {
  destroyed: boolean
  bitfield: { get(index: number): boolean }
  pieces: unknown[]
  store: { put(index: number, data: Buffer, cb: (err: Error | null) => void): void }
  wires: { have(index: number): void }[]
  _markVerified(index: number): void
  _checkDone(): void
  _destroy(err: Error): void
}

/**
 * Stores a piece whose SHA-1 shoal checked, then does what webtorrent does for a piece it
 * verified itself (forget the piece being assembled, mark it, tell every peer, see whether the
 * torrent is done), then calls `done`. The request's own callback comes after: webtorrent then
 * finds the piece no longer being assembled and leaves it alone, so it never hashes it again.
 */
function keepVerifiedPiece(torrent: Torrent, index: number, data: Buffer, done: () => void): void {
  const internals = torrent as unknown as TorrentInternals
  if (internals.destroyed || internals.bitfield.get(index)) return done()
  internals.store.put(index, data, (err) => {
    if (internals.destroyed) return done()
    if (err) return internals._destroy(err)
    if (!internals.bitfield.get(index)) {
      internals.pieces[index] = null
      internals._markVerified(index)
      for (const peer of internals.wires) peer.have(index)
      internals._checkDone()
    }
    done()
  })
}

/** From now on webtorrent believes the peer has a piece only if it has it and `allow` says so. */
export function offerOnly(wire: Wire, allow: (index: number) => boolean): void {
  const internals = wireInternals(wire)
  const pieces = internals.peerPieces
  internals.peerPieces = {
    get: (index) => pieces.get(index) && allow(index),
    set: (index, value) => pieces.set(index, value),
    get buffer() { return pieces.buffer },
  }
}

/** Has webtorrent choose pieces and send requests again now, not at its next tick. */
export function reschedule(torrent: Torrent): void {
  ;(torrent as unknown as { _update(): void })._update()
}

/**
 * A whole piece fetched in one request arrives as one buffer that torrent-piece splits into
 * 16 KiB views; its `flush` then copies the views into a new buffer. When the views lie back to
 * back in one buffer, this `flush` returns a view of it instead; otherwise it copies as before.
 */
function flushWithoutCopy(this: PieceInternals): Uint8Array | null {
  const blocks = this._buffer
  if (!blocks || this._chunks !== this._buffered) return null
  const first = blocks[0]!
  let offset = first.byteOffset
  const contiguous = blocks.every((block) => {
    const adjacent = block.buffer === first.buffer && block.byteOffset === offset
    offset += block.length
    return adjacent
  })
  const buffer = contiguous ? Buffer.from(first.buffer, first.byteOffset, this.length) : Buffer.concat(blocks, this.length)
  this._buffer = null
  this._cancellations = null
  this.sources = null
  this._flushed = true
  return buffer
}

let installed: Promise<void> | undefined

/** Private methods this module calls or wraps, as they must be on the loaded classes. */
const WIRE_METHODS = ['_onRequest', '_onPiece', '_resetTimeout', 'request'] as const
const TORRENT_METHODS = ['_markVerified', '_checkDone', '_destroy'] as const

/**
 * Checks the loaded releases against `BT_PINS` and the members used here on the loaded
 * classes, then replaces `flush` on the torrent-piece that webtorrent loads; once per process.
 */
export function installBtPatches(): Promise<void> {
  installed ??= (async () => {
    assertPinned(BT_PINS)
    const wire = await import(packageEntryUrl('bittorrent-protocol', ['webtorrent'])) as { default: { prototype: Record<string, unknown> } }
    const piece = await import(packageEntryUrl('torrent-piece', ['webtorrent'])) as { default: { prototype: Record<string, unknown> } }
    const torrent = await import(new URL('lib/torrent.js', packageEntryUrl('webtorrent', [])).href) as { default: { prototype: Record<string, unknown> } }
    const missing = [...WIRE_METHODS.filter((name) => typeof wire.default.prototype[name] !== 'function'),
      ...TORRENT_METHODS.filter((name) => typeof torrent.default.prototype[name] !== 'function'),
      ...(typeof piece.default.prototype['flush'] === 'function' ? [] : ['flush'])]
    if (missing.length) throw new PackageVersionError(`the loaded webtorrent, bittorrent-protocol or torrent-piece lacks ${missing.join(', ')}, which swarm/bt-internals.ts uses`)
    piece.default.prototype['flush'] = flushWithoutCopy
  })()
  installed.catch(() => { installed = undefined })
  return installed
}
