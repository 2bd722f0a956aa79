import { Readable } from 'node:stream'
import { sha256Digest, type Digest } from '../oci/digest.js'
import type { SignalOptions } from '../util/abort.js'
import { Wakeup } from '../util/wakeup.js'
import { ContentNotFoundError, type BlobInfo, type ContentEvent, type ContentProvider, type ContentWatcher, type ImageRecord, type OpenOptions } from './provider.js'

/** In-memory content store and image list, for unit tests of the modules above it. */
export class MemoryContentProvider implements ContentProvider, ContentWatcher {
  private readonly blobs = new Map<Digest, Buffer>()
  private readonly images = new Map<string, ImageRecord['target']>()
  private readonly listeners = new Set<(event: ContentEvent) => void>()

  addBlob(data: Buffer | string): Digest {
    const bytes = Buffer.from(data)
    const digest = sha256Digest(bytes)
    this.blobs.set(digest, bytes)
    return digest
  }

  removeBlob(digest: Digest): void {
    this.blobs.delete(digest)
  }

  setImage(name: string, target: ImageRecord['target']): void {
    const type = this.images.has(name) ? 'image-update' : 'image-create'
    this.images.set(name, target)
    this.emit({ type, name })
  }

  deleteImage(name: string): void {
    if (this.images.delete(name)) this.emit({ type: 'image-delete', name })
  }

  async listImages(): Promise<ImageRecord[]> {
    return [...this.images].map(([name, target]) => ({ name, target }))
  }

  async resolve(name: string): Promise<Digest | undefined> {
    return this.images.get(name)?.digest
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    const blob = this.blobs.get(digest)
    return blob && { digest, size: blob.length }
  }

  async open(digest: Digest, options: OpenOptions = {}): Promise<Readable> {
    const { range } = options
    const blob = this.blobs.get(digest)
    if (!blob) throw new ContentNotFoundError(digest)
    if (range && range.end >= blob.length) throw new RangeError(`range outside ${digest}`)
    return Readable.from([range ? blob.subarray(range.start, range.end + 1) : blob])
  }

  async *watch(options: SignalOptions = {}): AsyncIterable<ContentEvent> {
    const { signal } = options
    const queue: ContentEvent[] = [{ type: 'resync' }]
    const arrived = new Wakeup()
    const listener = (event: ContentEvent): void => {
      queue.push(event)
      arrived.notify()
    }
    this.listeners.add(listener)
    try {
      while (!signal?.aborted) {
        const event = queue.shift()
        if (event) yield event
        else await arrived.wait({ signal })
      }
    } finally {
      this.listeners.delete(listener)
    }
  }

  private emit(event: ContentEvent): void {
    for (const listener of this.listeners) listener(event)
  }
}
