import type { Readable } from 'node:stream'
import { ContentNotFoundError, type BlobInfo, type ContentProvider, type ImageRecord, type OpenOptions } from '../content/provider.js'
import type { Digest } from '../oci/digest.js'
import type { SignalOptions } from '../util/abort.js'
import type { FirstPulls } from './first-pulls.js'

/**
 * The content store with the verified first pulls this node keeps: until containerd imports
 * such a blob (or its linger ends), it is served to peers and swarmed like stored content.
 */
export class WithFirstPulls implements ContentProvider {
  constructor(private readonly store: ContentProvider, private readonly pulls: FirstPulls) {}

  listImages(options?: SignalOptions): Promise<ImageRecord[]> {
    return this.store.listImages(options)
  }

  resolve(name: string, options?: SignalOptions): Promise<Digest | undefined> {
    return this.store.resolve(name, options)
  }

  async stat(digest: Digest, options?: SignalOptions): Promise<BlobInfo | undefined> {
    const stored = await this.store.stat(digest, options)
    if (stored) return stored
    const kept = this.pulls.verified(digest)
    return kept && { digest, size: kept.size }
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<Readable> {
    try {
      return await this.store.open(digest, options)
    } catch (err) {
      const kept = this.pulls.verified(digest)
      if (!(err instanceof ContentNotFoundError) || !kept) throw err
      return kept.follow(options.range, 'content')
    }
  }
}
