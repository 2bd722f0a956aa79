import { readFileSync } from 'node:fs'
import Piece from 'torrent-piece'

/** The torrent-piece release whose `flush` this module replaces (see `assertPinnedPiece`). */
export const PINNED_TORRENT_PIECE = '4.0.1'

interface PieceInternals {
  length: number
  _buffer: Uint8Array[] | null
  _chunks: number
  _buffered: number
  _cancellations: unknown
  sources: unknown
  _flushed: boolean
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

let installed = false

/** Replaces torrent-piece's `flush` once per process; refuses a torrent-piece it was not written for. */
export function installPieceFlush(): void {
  if (installed) return
  assertPinnedPiece()
  ;(Piece.prototype as unknown as { flush: typeof flushWithoutCopy }).flush = flushWithoutCopy
  installed = true
}

/** The installed torrent-piece must be the one `flushWithoutCopy` mirrors. */
export function assertPinnedPiece(): void {
  const manifest = new URL('package.json', import.meta.resolve('torrent-piece'))
  const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }
  if (version !== PINNED_TORRENT_PIECE) {
    throw new Error(`torrent-piece ${version} is installed, but shoal's piece flush was written for ${PINNED_TORRENT_PIECE}: check src/swarm/piece-flush.ts against it`)
  }
}
