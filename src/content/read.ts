import type { Readable } from 'node:stream'
import type { Digest } from '../oci/digest.js'
import type { SignalOptions } from '../util/abort.js'
import type { ContentProvider } from './provider.js'

/** Reads a whole stream into memory, refusing more than `limit` bytes. */
export async function collect(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let length = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    length += chunk.length
    if (length > limit) {
      stream.destroy()
      throw new RangeError(`content is larger than ${limit} bytes`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, length)
}

/** Reads a small blob (a manifest or config) whole; undefined if absent or over the limit. */
export async function readSmallBlob(provider: ContentProvider, digest: Digest, limit: number, options: SignalOptions = {}): Promise<Buffer | undefined> {
  const info = await provider.stat(digest, options)
  if (!info || info.size > limit) return undefined
  return collect(await provider.open(digest, options), limit)
}
