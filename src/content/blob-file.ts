import type { ByteRange } from '../oci/range.js'
import type { OpenOptions } from './provider.js'
import { constants, createReadStream } from 'node:fs'
import { access, open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { addAbortSignal, Readable } from 'node:stream'
import { digestAlgorithm, digestHex, type Digest } from '../oci/digest.js'
import { ContentNotFoundError, type BlobInfo } from './provider.js'
import { ShoalError } from '../util/errors.js'
import { readExactly } from '../util/read-exactly.js'

/** Read-ahead per open blob stream: large enough for speed, small enough that many slow clients stay cheap. */
const READ_CHUNK = 256 * 1024
/** A range up to this long (a swarm piece) is read in one go instead of streamed. */
const SINGLE_READ_MAX = 4 * 1024 * 1024

/** `<root>/blobs/<algorithm>/<hex>`: the layout of containerd's content store and of OCI layouts. */
export function blobPath(root: string, digest: Digest): string {
  return join(root, 'blobs', digestAlgorithm(digest), digestHex(digest))
}

export class ContentUnreadableError extends ShoalError {
  constructor(readonly path: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error'
    super(`cannot read the content store at ${path} (${code}) as uid ${process.getuid?.() ?? '?'}: blobs cannot be served; run shoal as the store's owner (the chart runs it as root, without capabilities)`, { cause })
  }
}

/**
 * Throws ContentUnreadableError when this process may not list and open the blob files under
 * `root`. A store without a blob directory yet is readable: it holds nothing so far.
 */
export async function checkBlobsReadable(root: string): Promise<void> {
  const path = join(root, 'blobs', 'sha256')
  try {
    await access(path, constants.R_OK | constants.X_OK)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw new ContentUnreadableError(path, err)
  }
}

/** Size of a regular blob file, or undefined if there is none (symlinks are not followed). */
export async function statBlobFile(root: string, digest: Digest): Promise<BlobInfo | undefined> {
  const handle = await openNoFollow(blobPath(root, digest))
  if (!handle) return undefined
  try {
    const stat = await handle.stat()
    return stat.isFile() ? { digest, size: stat.size } : undefined
  } finally {
    await handle.close()
  }
}

/** Opens a blob file for streaming. Throws ContentNotFoundError when it is absent. */
export async function openBlobFile(root: string, digest: Digest, options: OpenOptions = {}): Promise<Readable> {
  const { range, signal } = options
  const handle = await openNoFollow(blobPath(root, digest))
  if (!handle) throw new ContentNotFoundError(digest)
  try {
    const stat = await handle.stat()
    if (!stat.isFile()) throw new ContentNotFoundError(digest)
    if (range && range.end >= stat.size) throw new RangeError(`range ${range.start}-${range.end} is outside ${digest} (${stat.size} bytes)`)
  } catch (err) {
    await handle.close()
    throw err
  }
  if (range && range.end - range.start + 1 <= SINGLE_READ_MAX) return readOnce(handle, range, digest, options.into)
  const stream = createReadStream('', {
    fd: handle,
    start: range?.start ?? 0,
    ...(range ? { end: range.end } : {}),
    highWaterMark: READ_CHUNK,
    autoClose: true,
  })
  return signal ? addAbortSignal(signal, stream) : stream
}

async function readOnce(handle: FileHandle, range: ByteRange, digest: Digest, into: Buffer | undefined): Promise<Readable> {
  try {
    return Readable.from([await readExactly(handle, range.start, range.end - range.start + 1, `the blob file of ${digest}`, into)])
  } finally {
    await handle.close()
  }
}

async function openNoFollow(path: string) {
  try {
    return await open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR' || code === 'EISDIR') return undefined
    throw err
  }
}
