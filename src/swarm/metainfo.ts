import { createHash } from 'node:crypto'
import bencode from 'bencode'
import { digestAlgorithm, type Digest } from '../oci/digest.js'
import { ShoalError } from '../util/errors.js'

const KiB = 1024
const MiB = 1024 * KiB
const GiB = 1024 * MiB
export const SHA1_LENGTH = 20
/** BitTorrent v1 metainfo files much larger than this are not ours (a 20 GiB blob needs ~100 KiB). */
export const MAX_METAINFO_BYTES = 4 * MiB

/** The pinned piece-length rule of docs/design.md: 256 KiB up to 64 MiB, 1 MiB up to 1 GiB, 4 MiB above. */
export function pieceLengthFor(size: number): number {
  if (size <= 64 * MiB) return 256 * KiB
  if (size <= GiB) return MiB
  return 4 * MiB
}

/** The deterministic torrent of one blob: every node holding the same bytes computes the same. */
export interface Metainfo {
  digest: Digest
  length: number
  pieceLength: number
  /** Concatenated SHA-1 of every piece. */
  pieces: Buffer
  /** Hex SHA-1 of the bencoded info dictionary. */
  infoHash: string
  /** The bencoded metainfo file, `{info: {length, name, piece length, pieces}}`. */
  torrent: Buffer
}

export function pieceCount(metainfo: Pick<Metainfo, 'length' | 'pieceLength'>): number {
  return Math.ceil(metainfo.length / metainfo.pieceLength)
}

export function pieceHash(metainfo: Pick<Metainfo, 'pieces'>, index: number): Buffer {
  return metainfo.pieces.subarray(index * SHA1_LENGTH, (index + 1) * SHA1_LENGTH)
}

export function torrentName(digest: Digest): string {
  return digest.replace(':', '-')
}

export class InvalidMetainfoError extends ShoalError {
  constructor(why: string, options?: ErrorOptions) {
    super(`invalid metainfo: ${why}`, options)
  }
}

/** The bytes read do not match the digest they were read under. */
export class ContentMismatchError extends ShoalError {
  constructor(readonly digest: string, why: string) {
    super(`content of ${digest} ${why}`)
  }
}

/** Builds the metainfo from piece hashes already computed. */
export function buildMetainfo(digest: Digest, length: number, pieces: Buffer): Metainfo {
  const pieceLength = pieceLengthFor(length)
  const info = { length, name: Buffer.from(torrentName(digest)), 'piece length': pieceLength, pieces }
  const infoBytes = Buffer.from(bencode.encode(info))
  const infoHash = createHash('sha1').update(infoBytes).digest('hex')
  const torrent = Buffer.from(bencode.encode({ info }))
  return { digest, length, pieceLength, pieces, infoHash, torrent }
}

/**
 * One pass over a blob: SHA-1 per piece and the blob's digest alongside. Throws
 * ContentMismatchError (under `label`) if the stream is not exactly `length` bytes.
 */
export async function hashBlob(length: number, chunks: AsyncIterable<Uint8Array>, label = 'blob'): Promise<{ digest: Digest; pieces: Buffer }> {
  const pieceLength = pieceLengthFor(length)
  const pieces = Buffer.alloc(Math.ceil(length / pieceLength) * SHA1_LENGTH)
  const whole = createHash('sha256')
  let piece = createHash('sha1')
  let inPiece = 0
  let index = 0
  let total = 0
  for await (const chunk of chunks) {
    whole.update(chunk)
    total += chunk.length
    if (total > length) throw new ContentMismatchError(label, `is longer than ${length} bytes`)
    let offset = 0
    while (offset < chunk.length) {
      const take = Math.min(pieceLength - inPiece, chunk.length - offset)
      piece.update(chunk.subarray(offset, offset + take))
      offset += take
      inPiece += take
      if (inPiece === pieceLength) {
        piece.digest().copy(pieces, index++ * SHA1_LENGTH)
        piece = createHash('sha1')
        inPiece = 0
      }
    }
  }
  if (total !== length) throw new ContentMismatchError(label, `has ${total} bytes, expected ${length}`)
  if (inPiece > 0) piece.digest().copy(pieces, index * SHA1_LENGTH)
  return { digest: `sha256:${whole.digest('hex')}` as Digest, pieces }
}

/**
 * The metainfo of a blob read from a store, checked against its digest on the way, so it is
 * never computed over bytes that are not what the digest says.
 */
export async function computeMetainfo(digest: Digest, length: number, chunks: AsyncIterable<Uint8Array>): Promise<Metainfo> {
  if (length <= 0) throw new ContentMismatchError(digest, 'is empty; empty blobs are never swarmed')
  if (digestAlgorithm(digest) !== 'sha256') throw new ContentMismatchError(digest, 'is not a sha256 digest; only those are swarmed')
  const hashed = await hashBlob(length, chunks, digest)
  if (hashed.digest !== digest) throw new ContentMismatchError(digest, 'does not hash to its digest')
  return buildMetainfo(digest, length, hashed.pieces)
}

/**
 * Parses a metainfo file received from a peer or read from the cache. Accepts exactly the
 * pinned format for `expected` and nothing else, so the infohash is the deterministic one.
 */
export function decodeMetainfo(bytes: Uint8Array, expected: Digest): Metainfo {
  if (bytes.length > MAX_METAINFO_BYTES) throw new InvalidMetainfoError(`larger than ${MAX_METAINFO_BYTES} bytes`)
  let decoded: unknown
  try {
    decoded = bencode.decode(bytes)
  } catch (err) {
    throw new InvalidMetainfoError('not bencode', { cause: err })
  }
  const info = (decoded as { info?: unknown } | undefined)?.info
  if (typeof info !== 'object' || info === null || Array.isArray(info) || info instanceof Uint8Array) throw new InvalidMetainfoError('no info dictionary')
  const fields = info as Record<string, unknown>
  const keys = Object.keys(fields).sort().join(',')
  if (keys !== 'length,name,piece length,pieces') throw new InvalidMetainfoError(`info keys are ${keys}, expected length,name,piece length,pieces`)
  const { length, name, pieces } = fields as { length: unknown; name: unknown; pieces: unknown }
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length <= 0) throw new InvalidMetainfoError('bad length')
  if (!(name instanceof Uint8Array) || Buffer.from(name).toString() !== torrentName(expected)) throw new InvalidMetainfoError(`name is not ${torrentName(expected)}`)
  if (fields['piece length'] !== pieceLengthFor(length)) throw new InvalidMetainfoError('piece length does not follow the pinned rule')
  if (!(pieces instanceof Uint8Array) || pieces.length !== Math.ceil(length / pieceLengthFor(length)) * SHA1_LENGTH) throw new InvalidMetainfoError('pieces do not match the length')
  return buildMetainfo(expected, length, Buffer.from(pieces))
}
