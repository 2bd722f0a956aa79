import { Readable } from 'node:stream'
import type { ContentProvider } from '../content/provider.js'
import type { TransferLedger } from '../observe/ledger.js'
import type { Metrics } from '../observe/metrics.js'
import type { Digest } from '../oci/digest.js'
import { BlobUnknownError } from '../oci/errors.js'
import { parseRange, rangeLength, type ByteRange } from '../oci/range.js'
import type { Swarm } from '../swarm/swarm.js'
import type { SignalOptions } from '../util/abort.js'
import { countedUpload } from './upload.js'

/** Longest range one piece request may ask of a download in progress (the largest piece is 4 MiB). */
export const MAX_PIECE_REQUEST_BYTES = 16 * 1024 * 1024

export interface PieceAnswer {
  size: number
  range: ByteRange
  body: Readable
}

/**
 * Serves peers byte ranges of a blob for the swarm's whole-piece requests: from the content
 * store if the blob is here, else from a download in progress, but only pieces that already
 * passed their SHA-1 check.
 */
export class PieceService {
  constructor(private readonly components: { content: ContentProvider; swarm: Swarm; ledger: TransferLedger; metrics: Metrics }) {}

  async open(digest: Digest, rangeHeader: string | undefined, peer: string, options: SignalOptions = {}): Promise<PieceAnswer> {
    const { content, swarm } = this.components
    const info = await content.stat(digest, options)
    if (info) {
      const range = parseRange(rangeHeader, info.size) ?? { start: 0, end: info.size - 1 }
      const body = await content.open(digest, { range, ...options })
      return { size: info.size, range, body: countedUpload(this.components, body, digest, peer, 'http-pieces') }
    }
    const download = swarm.downloading(digest)
    if (!download) throw new BlobUnknownError(digest, 'this node neither holds nor downloads the blob')
    const range = parseRange(rangeHeader, download.metainfo.length)
    if (!range || rangeLength(range) > MAX_PIECE_REQUEST_BYTES) throw new BlobUnknownError(digest, `a download in progress serves ranges of at most ${MAX_PIECE_REQUEST_BYTES} bytes`)
    if (download.readableBytes(range.start, rangeLength(range)) < rangeLength(range)) throw new BlobUnknownError(digest, 'those pieces are not verified here yet')
    const bytes = await download.read(range.start, rangeLength(range))
    return { size: download.metainfo.length, range, body: countedUpload(this.components, Readable.from([bytes]), digest, peer, 'http-pieces') }
  }
}
