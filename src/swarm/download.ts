import type { DownloadFile } from './download-store.js'
import { pieceCount, type Metainfo } from './metainfo.js'
import type { SignalOptions } from '../util/abort.js'
import { systemClock, type Clock } from '../util/clock.js'
import { Wakeup } from '../util/wakeup.js'
import { Sha256Hasher } from './sha256-hasher.js'
import { ShoalError } from '../util/errors.js'
import { POOL_MAX_BYTES, type BufferPool } from '../util/buffer-pool.js'

/** Largest single read from the download file, for hashing and for streaming (the pool's largest buffer). */
export const READ_BATCH_BYTES = POOL_MAX_BYTES
/**
 * The most recently verified pieces of a download kept in memory, so the SHA-256 and the
 * readers take them from there instead of reading them back from the file.
 */
export const RECENT_PIECES_BYTES = 8 * 1024 * 1024

export class StallError extends ShoalError {
  constructor(digest: string, piece: number, ms: number) {
    super(`no progress on ${digest} for ${ms} ms (waiting for piece ${piece})`)
  }
}

/** A reader blocked this long on one piece lets it come from anywhere, holders included. */
export const URGENT_AFTER_MS = 2_000

export class DownloadFailedError extends ShoalError {
  constructor(digest: string, why: string, options?: ErrorOptions) {
    super(`download of ${digest} failed: ${why}`, options)
  }
}

export interface DownloadComponents {
  file: DownloadFile
  /** The reader needs this piece next: fetch it (and a few after it) first. */
  onCritical?: (piece: number) => void
  /** A reader has waited URGENT_AFTER_MS for this piece: let it come from anywhere. */
  onUrgent?: (piece: number) => void
  /** Buffers for reads from the file, and where kept pieces' memory goes once neither the download nor a reader uses it. */
  pool?: Pick<BufferPool, 'acquire' | 'release'> | undefined
  clock?: Clock
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
  readonly file: DownloadFile
  private readonly changed: Wakeup
  private readonly clock: Clock
  private readonly onCritical: (piece: number) => void
  private readonly onUrgent: (piece: number) => void
  private readonly hash = new Sha256Hasher()
  private hashedPieces = 0
  /** The latest verified pieces as stored, oldest first, at most RECENT_PIECES_BYTES. */
  private readonly recent = new Map<number, Buffer>()
  private recentBytes = 0
  /** Holders of each kept piece's memory: the recent pieces (one) and each reader's unsent views. */
  private readonly loans = new WeakMap<ArrayBufferLike, number>()
  private readonly pool: Pick<BufferPool, 'acquire' | 'release'> | undefined
  private hashing = false
  private failure: Error | undefined
  private settleVerdict!: (matches: boolean) => void
  /** Whether the whole blob hashes to its digest; settles once every piece is verified. */
  readonly verdict: Promise<boolean>
  /**
   * Once every piece verified, whether the whole blob hashed to its digest: true vouches for the
   * metainfo, false means the metainfo lied. Undefined until then, and for a failed download.
   */
  get digestMatches(): boolean | undefined {
    return this.matches
  }

  /** Streams reading this download now. */
  get consumers(): number {
    return this.readers
  }

  /** When a piece was last verified or a reader left (clock time). */
  get lastActivity(): number {
    return this.lastActive
  }

  private matches: boolean | undefined
  private readers = 0
  private lastActive: number

  constructor(readonly metainfo: Metainfo, components: DownloadComponents) {
    this.file = components.file
    this.clock = components.clock ?? systemClock
    this.changed = new Wakeup(this.clock)
    this.onCritical = components.onCritical ?? (() => {})
    this.onUrgent = components.onUrgent ?? (() => {})
    this.pool = components.pool
    this.lastActive = this.clock.now()
    this.pieces = pieceCount(metainfo)
    this.verified = new Uint8Array(this.pieces)
    this.verdict = new Promise((resolve) => { this.settleVerdict = resolve })
    this.file.onPieceStored((piece, data) => this.keepRecent(piece, data))
  }

  /** A verified piece as written (it is never changed afterwards) replaces the oldest kept ones. */
  private keepRecent(piece: number, data: Buffer): void {
    if (this.recent.has(piece) || data.length > RECENT_PIECES_BYTES) return
    this.recent.set(piece, data)
    this.recentBytes += data.length
    this.borrow(data)
    for (const [oldest, bytes] of this.recent) {
      if (this.recentBytes <= RECENT_PIECES_BYTES) break
      this.recent.delete(oldest)
      this.recentBytes -= bytes.length
      this.giveBack(bytes)
    }
  }

  /** A verified piece still kept in memory, else undefined (read it from the file). */
  recentPiece(piece: number): Buffer | undefined {
    return this.verified[piece] ? this.recent.get(piece) : undefined
  }

  /**
   * A kept piece lent to a reader: its memory is not given back before the reader calls
   * `giveBack` with it, which it must do only once nothing can read the bytes any more (the
   * kernel has them). A reader that never does leaves the memory to the garbage collector.
   */
  lendRecentPiece(piece: number): Buffer | undefined {
    const kept = this.recentPiece(piece)
    if (kept) this.borrow(kept)
    return kept
  }

  giveBack(bytes: Buffer): void {
    const holders = (this.loans.get(bytes.buffer) ?? 0) - 1
    if (holders > 0) return void this.loans.set(bytes.buffer, holders)
    if (!this.loans.delete(bytes.buffer)) return
    this.pool?.release(bytes)
  }

  private borrow(bytes: Buffer): void {
    if (this.pool) this.loans.set(bytes.buffer, (this.loans.get(bytes.buffer) ?? 0) + 1)
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
    this.touch()
    this.changed.notify()
    void this.advanceHash()
  }

  /** A reader moved on: the download is in use (see the swarm's tidy loop). */
  touch(): void {
    this.lastActive = this.clock.now()
  }

  /** Counts a reader until the returned function is called (twice is harmless); its leaving counts as activity. */
  addReader(): () => void {
    this.readers++
    let left = false
    return () => {
      if (left) return
      left = true
      this.readers--
      this.touch()
    }
  }

  isVerified(piece: number): boolean {
    return this.verified[piece] === 1
  }

  fail(error: Error): void {
    if (this.failure) return
    this.failure = error
    this.hash.drop()
    this.settleVerdict(false)
    this.changed.notify()
  }

  /** Resolves once `piece` is verified; throws on failure, abort, or no new piece for `stallMs`. */
  async waitForPiece(piece: number, stallMs: number, options: SignalOptions = {}): Promise<void> {
    const { signal } = options
    const now = (): number => this.clock.now()
    if (!this.isVerified(piece)) this.onCritical(piece)
    let progressAt = this.verifiedCount
    let deadline = now() + stallMs
    const urgentAt = now() + URGENT_AFTER_MS
    let urgent = false
    while (!this.isVerified(piece)) {
      if (!urgent && now() >= urgentAt) {
        this.onUrgent(piece)
        urgent = true
      }
      if (this.failure) throw this.failure
      signal?.throwIfAborted()
      if (this.verifiedCount !== progressAt) {
        progressAt = this.verifiedCount
        deadline = now() + stallMs
      }
      const remaining = deadline - now()
      if (remaining <= 0) throw new StallError(this.metainfo.digest, piece, stallMs)
      await this.changed.wait({ timeoutMs: urgent ? remaining : Math.min(remaining, Math.max(0, urgentAt - now())), signal })
    }
  }

  /** Resolves once every piece is verified, with the same stall rule as waitForPiece. */
  async waitForAll(stallMs: number, options: SignalOptions = {}): Promise<void> {
    for (let piece = 0; piece < this.pieces; piece++) {
      if (!this.isVerified(piece)) await this.waitForPiece(piece, stallMs, options)
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

  /** `length` verified bytes at `position`, into `into` when it is long enough. */
  read(position: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.file.read(position, length, into)
  }

  /** As `read`, into a buffer of the pool lent to the caller, who gives it back (`giveBack`) once its bytes are sent. */
  async readLent(position: number, length: number): Promise<Buffer> {
    const into = this.pool?.acquire(length)
    const bytes = await this.file.read(position, length, into)
    if (into) this.borrow(bytes)
    return bytes
  }

  /** Feeds the verified prefix to SHA-256, in file order, and settles the verdict at the end. */
  private async advanceHash(): Promise<void> {
    if (this.hashing || this.failure) return
    this.hashing = true
    try {
      while (this.hashedPieces < this.pieces && this.isVerified(this.hashedPieces)) {
        const kept = this.recentPiece(this.hashedPieces)
        if (kept) {
          await this.hash.update(kept)
          this.hashedPieces++
          continue
        }
        const { position, length, end } = this.unheldRun(this.hashedPieces)
        const bytes = await this.readLent(position, length)
        // The hasher copies the bytes before it returns its promise.
        const hashed = this.hash.update(bytes)
        this.giveBack(bytes)
        await hashed
        this.hashedPieces = end
      }
      if (this.hashedPieces === this.pieces) {
        this.matches = `sha256:${await this.hash.digest()}` === this.metainfo.digest
        this.settleVerdict(this.matches)
      }
    } catch (err) {
      this.fail(err as Error)
    } finally {
      this.hashing = false
    }
    if (!this.failure && this.hashedPieces < this.pieces && this.isVerified(this.hashedPieces)) void this.advanceHash()
  }

  /** Verified pieces from `first` that are not kept in memory, up to READ_BATCH_BYTES: one read. */
  private unheldRun(first: number): { position: number; length: number; end: number } {
    const { pieceLength, length: size } = this.metainfo
    let end = first
    while (end < this.pieces && this.isVerified(end) && !this.recent.has(end) && (end - first) * pieceLength < READ_BATCH_BYTES) end++
    const position = first * pieceLength
    return { position, length: Math.min(end * pieceLength, size) - position, end }
  }
}
