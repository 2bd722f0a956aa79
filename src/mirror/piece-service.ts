import { Readable } from 'node:stream'
import { ContentNotFoundError, type ContentProvider } from '../content/provider.js'
import { systemClock, type Clock } from '../util/clock.js'
import type { TransferLedger } from '../observe/ledger.js'
import type { Metrics } from '../observe/metrics.js'
import type { Digest } from '../oci/digest.js'
import { BlobUnknownError } from '../oci/errors.js'
import { parseRange, rangeLength, type ByteRange } from '../oci/range.js'
import type { Swarm } from '../swarm/swarm.js'
import type { SignalOptions } from '../util/abort.js'
import { BufferPool } from '../util/buffer-pool.js'
import { countedUpload } from './upload.js'

const noRelease = (): void => {}

/** How long a blob's size from the content store is trusted, and how many are kept. */
const SIZE_TTL_MS = 10_000
const MAX_SIZES = 64

/** Longest range one piece request may ask of a download in progress (the largest piece is 4 MiB). */
export const MAX_PIECE_REQUEST_BYTES = 16 * 1024 * 1024

export interface PieceAnswer {
  size: number
  range: ByteRange
  body: Readable
  /** Call once the body is written out (the response finished): its buffer may then be reused. */
  release: () => void
}

/**
 * Serves peers byte ranges of a blob for the swarm's whole-piece requests: from the content
 * store if the blob is here, else from a download in progress, but only pieces that already
 * passed their SHA-1 check.
 */
export class PieceService {
  /** Sizes of blobs in the content store, so a peer's many piece requests do not each ask containerd. */
  private readonly sizes = new Map<Digest, { size: number; atMs: number }>()

  private readonly buffers: BufferPool

  constructor(private readonly components: { content: ContentProvider; swarm: Swarm; ledger: TransferLedger; metrics: Metrics; clock?: Clock; buffers?: BufferPool }) {
    this.buffers = components.buffers ?? new BufferPool()
  }

  async open(digest: Digest, rangeHeader: string | undefined, peer: string, options: SignalOptions = {}): Promise<PieceAnswer> {
    const { content, swarm } = this.components
    // A download's verified pieces first: a node downloading a blob does not hold it yet, and each
    // miss would cost the content store a lookup (containerd: a gRPC call) per piece served.
    const fromDownload = await this.fromDownload(digest, rangeHeader, peer)
    if (fromDownload) return fromDownload
    const size = await this.localSize(digest, options)
    if (size !== undefined) {
      const range = parseRange(rangeHeader, size) ?? { start: 0, end: size - 1 }
      const { into, release } = this.lease(rangeLength(range))
      const body = await content.open(digest, { range, size, into, ...options }).catch((err: unknown) => {
        release()
        this.sizes.delete(digest)
        throw err instanceof ContentNotFoundError ? new BlobUnknownError(digest) : err
      })
      return { size, range, body: countedUpload(this.components, body, digest, peer, 'http-pieces'), release }
    }
    if (!swarm.downloading(digest)) throw new BlobUnknownError(digest, 'this node neither holds nor downloads the blob')
    throw new BlobUnknownError(digest, `a download in progress serves only ranges it has verified, of at most ${MAX_PIECE_REQUEST_BYTES} bytes`)
  }

  /** The range from a download in progress, if it has verified all of it; else undefined. */
  private async fromDownload(digest: Digest, rangeHeader: string | undefined, peer: string): Promise<PieceAnswer | undefined> {
    const download = this.components.swarm.downloading(digest)
    if (!download) return undefined
    const range = parseRange(rangeHeader, download.metainfo.length)
    if (!range || rangeLength(range) > MAX_PIECE_REQUEST_BYTES) return undefined
    if (download.readableBytes(range.start, rangeLength(range)) < rangeLength(range)) return undefined
    const { into, release } = this.lease(rangeLength(range))
    const bytes = await download.read(range.start, rangeLength(range), into).catch((err: unknown) => {
      release()
      throw err
    })
    return { size: download.metainfo.length, range, body: countedUpload(this.components, Readable.from([bytes]), digest, peer, 'http-pieces'), release }
  }

  /** A buffer of the pool for one answer (none when the pool has no room), and how to give it back. */
  private lease(length: number): { into: Buffer | undefined; release: () => void } {
    const into = this.buffers.acquire(length)
    return { into, release: into ? () => this.buffers.release(into) : noRelease }
  }

  private async localSize(digest: Digest, options: SignalOptions): Promise<number | undefined> {
    const now = (this.components.clock ?? systemClock).now()
    const known = this.sizes.get(digest)
    if (known && now - known.atMs < SIZE_TTL_MS) return known.size
    const info = await this.components.content.stat(digest, options)
    if (!info) return undefined
    if (this.sizes.size >= MAX_SIZES) this.sizes.delete(this.sizes.keys().next().value!)
    this.sizes.set(digest, { size: info.size, atMs: now })
    return info.size
  }
}
