import { createHash } from 'node:crypto'
import type { DownloadFile } from './download-store.js'
import { pieceCount, type Metainfo } from './metainfo.js'

/** Largest single read from the download file, for hashing and for streaming. */
export const READ_BATCH_BYTES = 8 * 1024 * 1024

export class StallError extends Error {
  constructor(digest: string, piece: number, ms: number) {
    super(`no progress on ${digest} for ${ms} ms (waiting for piece ${piece})`)
    this.name = 'StallError'
  }
}

/** A reader blocked this long on one piece lets it come from anywhere, holders included. */
export const URGENT_AFTER_MS = 2_000

export class DownloadFailedError extends Error {
  constructor(digest: string, why: string) {
    super(`download of ${digest} failed: ${why}`)
    this.name = 'DownloadFailedError'
  }
}

/**
 * One blob being assembled from the swarm: which pieces are verified (SHA-1, by webtorrent,
 * before they were stored), a running SHA-256 over the verified prefix, and the readers
 * waiting for pieces. A piece only becomes readable once verified.
 */
export class Download {
  readonly pieces: number
  private readonly verified: Uint8Array
  private verifiedCount = 0
  private readonly waiters = new Set<() => void>()
  private readonly hash = createHash('sha256')
  private hashedPieces = 0
  private hashing = false
  private failure: Error | undefined
  private settleVerdict!: (matches: boolean) => void
  /** Whether the whole blob hashes to its digest; settles once every piece is verified. */
  readonly verdict: Promise<boolean>
  consumers = 0
  lastActivity = Date.now()

  constructor(readonly metainfo: Metainfo, readonly file: DownloadFile, private readonly onCritical: (piece: number) => void,
    private readonly onUrgent: (piece: number) => void = () => {}) {
    this.pieces = pieceCount(metainfo)
    this.verified = new Uint8Array(this.pieces)
    this.verdict = new Promise((resolve) => { this.settleVerdict = resolve })
  }

  get complete(): boolean {
    return this.verifiedCount === this.pieces
  }

  get error(): Error | undefined {
    return this.failure
  }

  markVerified(piece: number): void {
    if (piece < 0 || piece >= this.pieces || this.verified[piece]) return
    this.verified[piece] = 1
    this.verifiedCount++
    this.lastActivity = Date.now()
    this.wake()
    void this.advanceHash()
  }

  isVerified(piece: number): boolean {
    return this.verified[piece] === 1
  }

  fail(error: Error): void {
    if (this.failure) return
    this.failure = error
    this.settleVerdict(false)
    this.wake()
  }

  /** Resolves once `piece` is verified; throws on failure, abort, or no new piece for `stallMs`. */
  async waitForPiece(piece: number, stallMs: number, signal?: AbortSignal): Promise<void> {
    if (!this.isVerified(piece)) this.onCritical(piece)
    let progressAt = this.verifiedCount
    let deadline = Date.now() + stallMs
    const urgentAt = Date.now() + URGENT_AFTER_MS
    let urgent = false
    while (!this.isVerified(piece)) {
      if (!urgent && Date.now() >= urgentAt) {
        this.onUrgent(piece)
        urgent = true
      }
      if (this.failure) throw this.failure
      signal?.throwIfAborted()
      if (this.verifiedCount !== progressAt) {
        progressAt = this.verifiedCount
        deadline = Date.now() + stallMs
      }
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw new StallError(this.metainfo.digest, piece, stallMs)
      await this.sleepUntilChange(urgent ? remaining : Math.min(remaining, Math.max(0, urgentAt - Date.now())), signal)
    }
  }

  /** Resolves once every piece is verified, with the same stall rule as waitForPiece. */
  async waitForAll(stallMs: number, signal?: AbortSignal): Promise<void> {
    for (let piece = 0; piece < this.pieces; piece++) {
      if (!this.isVerified(piece)) await this.waitForPiece(piece, stallMs, signal)
    }
  }

  /** Verified bytes available from `position`, up to `limit`. */
  readableBytes(position: number, limit: number): number {
    const { pieceLength, length } = this.metainfo
    let piece = Math.floor(position / pieceLength)
    let end = position
    while (piece < this.pieces && this.verified[piece] && end - position < limit) {
      end = Math.min((piece + 1) * pieceLength, length)
      piece++
    }
    return Math.min(end - position, limit)
  }

  read(position: number, length: number): Promise<Buffer> {
    return this.file.read(position, length)
  }

  private sleepUntilChange(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.waiters.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  /** Feeds the verified prefix to SHA-256, in file order, and settles the verdict at the end. */
  private async advanceHash(): Promise<void> {
    if (this.hashing || this.failure) return
    this.hashing = true
    try {
      for (;;) {
        const position = this.hashedPieces * this.metainfo.pieceLength
        const length = this.readableBytes(position, READ_BATCH_BYTES)
        if (length === 0) break
        this.hash.update(await this.file.read(position, length))
        this.hashedPieces = Math.ceil((position + length) / this.metainfo.pieceLength)
      }
      if (this.hashedPieces === this.pieces) this.settleVerdict(`sha256:${this.hash.copy().digest('hex')}` === this.metainfo.digest)
    } catch (err) {
      this.fail(err as Error)
    } finally {
      this.hashing = false
    }
    if (!this.failure && this.hashedPieces < this.pieces && this.isVerified(this.hashedPieces)) void this.advanceHash()
  }
}
