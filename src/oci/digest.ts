import { createHash } from 'node:crypto'
import { DigestInvalidError } from './errors.js'

/** A validated content digest such as `sha256:<64 lowercase hex>`. */
export type Digest = string & { readonly __digest: unique symbol }

export type DigestAlgorithm = 'sha256' | 'sha512'

const DIGEST_PATTERN = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/

export function isDigest(value: string): value is Digest {
  return DIGEST_PATTERN.test(value)
}

/** Throws DigestInvalidError (an OCI 400) for anything that is not a canonical digest. */
export function parseDigest(value: string): Digest {
  if (!isDigest(value)) throw new DigestInvalidError(value)
  return value
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm
}

export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1)
}

export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest
}

/** Incremental hasher that checks a stream of bytes against the digest it claims to have. */
export class DigestVerifier {
  private readonly hash
  constructor(readonly expected: Digest) {
    this.hash = createHash(digestAlgorithm(expected))
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk)
  }

  matches(): boolean {
    return `${digestAlgorithm(this.expected)}:${this.hash.digest('hex')}` === this.expected
  }
}
