import type { OpenOptions } from '../content/provider.js'
import type { SignalOptions } from '../util/abort.js'
import { Readable } from 'node:stream'
import { openBlobFile } from '../content/blob-file.js'
import { ContentNotFoundError, type BlobInfo, type ContentProvider, type ImageRecord } from '../content/provider.js'
import { isDigest, type Digest } from '../oci/digest.js'
import type { ContainerdClient } from './client.js'

export const DEFAULT_CONTAINERD_CONTENT_PATH = '/var/lib/containerd/io.containerd.content.v1.content'

export interface ContainerdContentInit {
  /** containerd's content store on disk; blobs are read from here (several times faster than gRPC). */
  contentPath?: string
}

/**
 * Content from containerd: the image and content services decide what this node has (in its
 * namespace); bytes come straight from the content store files, read-only, or over gRPC
 * Content/Read when the files are not reachable.
 */
export class ContainerdContentProvider implements ContentProvider {
  private readonly contentPath: string

  constructor(private readonly components: { client: ContainerdClient }, init: ContainerdContentInit = {}) {
    this.contentPath = init.contentPath ?? DEFAULT_CONTAINERD_CONTENT_PATH
  }

  async listImages(options: SignalOptions = {}): Promise<ImageRecord[]> {
    const images = await this.components.client.listImages(options)
    const records: ImageRecord[] = []
    for (const image of images) {
      const target = image.target
      if (!target || !isDigest(target.digest)) continue
      records.push({ name: image.name, target: { digest: target.digest, size: Number(target.size), mediaType: target.media_type } })
    }
    return records
  }

  async resolve(name: string, options: SignalOptions = {}): Promise<Digest | undefined> {
    const digest = (await this.components.client.getImage(name, options))?.target?.digest
    return digest !== undefined && isDigest(digest) ? digest : undefined
  }

  async stat(digest: Digest, options: SignalOptions = {}): Promise<BlobInfo | undefined> {
    const info = await this.components.client.contentInfo(digest, options)
    return info && { digest, size: Number(info.size) }
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<Readable> {
    const { range, signal } = options
    const info = options.size === undefined ? await this.stat(digest, { signal }) : { digest, size: options.size }
    if (!info) throw new ContentNotFoundError(digest)
    if (range && range.end >= info.size) throw new RangeError(`range ${range.start}-${range.end} is outside ${digest} (${info.size} bytes)`)
    try {
      return await openBlobFile(this.contentPath, digest, options)
    } catch (err) {
      if (!(err instanceof ContentNotFoundError)) throw err
    }
    const start = range?.start ?? 0
    const length = range ? range.end - range.start + 1 : info.size - start
    return Readable.from(this.components.client.readContent(digest, start, length, { signal }), { objectMode: false })
  }
}
