import { createHash } from 'node:crypto'
import type { ContentProvider } from '../content/provider.js'
import { collect } from '../content/read.js'
import { pieceCount, pieceHash, type Metainfo } from './metainfo.js'
import { ShoalError } from '../util/errors.js'
import { Semaphore } from '../util/semaphore.js'

type Callback<T> = (err: Error | null, value?: T) => void

/** Pieces read from the content store at once, over every seeded blob: bounds the memory of reads in progress. */
export const CONCURRENT_PIECE_READS = 4

/** Pieces recently read and verified, shared by every seeded blob of the process, and the slots to read more. */
export class PieceCache {
  private readonly entries = new Map<string, Buffer>()
  private bytes = 0
  readonly reads = new Semaphore(CONCURRENT_PIECE_READS)

  constructor(private readonly capacityBytes: number) {}

  get(key: string): Buffer | undefined {
    const piece = this.entries.get(key)
    if (piece) {
      this.entries.delete(key)
      this.entries.set(key, piece)
    }
    return piece
  }

  set(key: string, piece: Buffer): void {
    if (piece.length > this.capacityBytes) return
    this.entries.set(key, piece)
    this.bytes += piece.length
    for (const [oldest, value] of this.entries) {
      if (this.bytes <= this.capacityBytes) break
      this.entries.delete(oldest)
      this.bytes -= value.length
    }
  }
}

export class PieceVerificationError extends ShoalError {
  constructor(digest: string, index: number) {
    super(`piece ${index} of ${digest} in the local content store does not match its SHA-1; not serving it`)
  }
}

export interface SeedStoreOptions {
  metainfo: Metainfo
  content: ContentProvider
  cache: PieceCache
  /** Told about every piece that fails verification (local corruption). */
  onCorruptPiece: (index: number) => void
}

/**
 * A read-only chunk store (the abstract-chunk-store interface webtorrent uses) over a blob in
 * the node's content store: nothing is copied, and each piece is SHA-1 verified when it is
 * read, so a corrupted local blob is never uploaded.
 */
export function seedStoreClass(options: SeedStoreOptions) {
  const { metainfo, content, cache, onCorruptPiece } = options
  const count = pieceCount(metainfo)
  const inflight = new Map<number, Promise<Buffer>>()

  function readPiece(index: number): Promise<Buffer> {
    const key = `${metainfo.infoHash}:${index}`
    const cached = cache.get(key)
    if (cached) return Promise.resolve(cached)
    let pending = inflight.get(index)
    if (!pending) {
      pending = cache.reads.run(async () => {
        const start = index * metainfo.pieceLength
        const end = Math.min(start + metainfo.pieceLength, metainfo.length) - 1
        const piece = await collect(await content.open(metainfo.digest, { range: { start, end } }), metainfo.pieceLength)
        if (!createHash('sha1').update(piece).digest().equals(pieceHash(metainfo, index))) {
          onCorruptPiece(index)
          throw new PieceVerificationError(metainfo.digest, index)
        }
        cache.set(key, piece)
        return piece
      }).finally(() => inflight.delete(index))
      inflight.set(index, pending)
    }
    return pending
  }

  return class SeedStore {
    readonly chunkLength = metainfo.pieceLength
    readonly length = metainfo.length

    put(_index: number, _buffer: Buffer, cb: Callback<void>): void {
      queueMicrotask(() => cb(new Error('the content store is read-only')))
    }

    get(index: number, opts: { offset?: number; length?: number } | Callback<Buffer> | null, cb?: Callback<Buffer>): void {
      const callback = (typeof opts === 'function' ? opts : cb) as Callback<Buffer>
      const range = typeof opts === 'function' || !opts ? {} : opts
      if (!Number.isInteger(index) || index < 0 || index >= count) {
        queueMicrotask(() => callback(new Error(`no piece ${index}`)))
        return
      }
      readPiece(index).then((piece) => {
        const offset = range.offset ?? 0
        // A copy: a block waiting in a slow peer's socket must not keep its whole piece in memory.
        callback(null, Buffer.from(piece.subarray(offset, offset + (range.length ?? piece.length - offset))))
      }, (err: Error) => callback(err))
    }

    close(cb?: Callback<void>): void {
      queueMicrotask(() => cb?.(null))
    }

    destroy(cb?: Callback<void>): void {
      queueMicrotask(() => cb?.(null))
    }
  }
}
