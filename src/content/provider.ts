import type { Readable } from 'node:stream'
import type { Digest } from '../oci/digest.js'
import type { ByteRange } from '../oci/range.js'
import type { SignalOptions } from '../util/abort.js'
import { ShoalError } from '../util/errors.js'

export interface OpenOptions extends SignalOptions {
  range?: ByteRange | undefined
  /** The blob's size from a `stat` the caller just made: providers may skip their own. */
  size?: number | undefined
  /**
   * A buffer of at least the range's length that a provider may read a short range into instead
   * of allocating one; the stream then yields a view of it. The caller keeps it until the bytes are written out.
   */
  into?: Buffer | undefined
}

export interface BlobInfo {
  digest: Digest
  size: number
}

/** An image record: a name (`registry/repository:tag` or `…@digest`) and what it points at. */
export interface ImageRecord {
  name: string
  target: BlobInfo & { mediaType: string }
}

/**
 * Read-only access to the content a node holds (containerd's content and image stores, or a
 * directory for tests and the demo). Implementations never write and never read outside their
 * store: digests are validated before any path is built.
 */
export interface ContentProvider {
  listImages(options?: SignalOptions): Promise<ImageRecord[]>
  /** Resolves an image name such as `docker.io/library/nginx:1.27` to its target digest. */
  resolve(name: string, options?: SignalOptions): Promise<Digest | undefined>
  stat(digest: Digest, options?: SignalOptions): Promise<BlobInfo | undefined>
  /** Throws ContentNotFoundError when the blob is absent. The range (default: all) must lie within the blob. */
  open(digest: Digest, options?: OpenOptions): Promise<Readable>
}

export type ContentEvent =
  | { type: 'resync' }
  | { type: 'image-create' | 'image-update' | 'image-delete'; name: string }

/**
 * Image events. Every subscription starts with `resync` (take a full snapshot now) and repeats
 * it whenever events may have been missed, e.g. after a reconnect to containerd.
 */
export interface ContentWatcher {
  /** Runs until `signal` aborts. */
  watch(options?: SignalOptions): AsyncIterable<ContentEvent>
}

export class ContentNotFoundError extends ShoalError {
  constructor(readonly digest: string) {
    super(`content ${digest} not found`)
  }
}
