import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { ShoalError } from '../util/errors.js'

/** Bytes of one authentication tag: HMAC-SHA-256 truncated to 128 bits. */
export const TAG_BYTES = 16
export const MIN_KEY_LENGTH = 32
export const MAX_KEYS = 4

export class ClusterKeyError extends ShoalError {
  constructor(path: string, why: string, options?: ErrorOptions) {
    super(`cluster key file ${path}: ${why}`, options)
  }
}

/** What a message is, so a tag made for one kind never verifies as another. */
export type TagDomain = 'dht' | 'wire' | 'http-request' | 'http-response'

/**
 * The cluster's shared secret(s). Every message between nodes carries one tag per key the
 * sender has; the receiver accepts it when any tag is one of its own keys' tags. Nodes whose key
 * files share at least one key talk, which is what a rolling key rotation needs.
 */
export class ClusterKey {
  private readonly keys: Buffer[]
  /** Short fingerprints of the keys (for /stats and logs), never the keys. */
  readonly fingerprints: string[]

  constructor(keys: Buffer[]) {
    if (keys.length === 0 || keys.length > MAX_KEYS) throw new ShoalError(`a cluster key needs 1 to ${MAX_KEYS} keys`)
    this.keys = keys
    this.fingerprints = keys.map((key) => createHash('sha256').update('shoal-key-fingerprint').update(key).digest('hex').slice(0, 12))
  }

  /** The keys of a file: one a line, at least 32 characters each; blank lines and `#` comments are skipped. */
  static parse(text: string, path: string): ClusterKey {
    const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
    if (lines.length === 0) throw new ClusterKeyError(path, 'holds no key (one key a line, e.g. from `openssl rand -hex 32`)')
    if (lines.length > MAX_KEYS) throw new ClusterKeyError(path, `holds ${lines.length} keys; at most ${MAX_KEYS}`)
    const short = lines.findIndex((line) => line.length < MIN_KEY_LENGTH)
    if (short >= 0) throw new ClusterKeyError(path, `key on line ${short + 1} is shorter than ${MIN_KEY_LENGTH} characters`)
    return new ClusterKey(lines.map((line) => Buffer.from(line, 'utf8')))
  }

  static async load(path: string): Promise<ClusterKey> {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      throw new ClusterKeyError(path, 'cannot be read', { cause: err })
    }
    return ClusterKey.parse(text, path)
  }

  /** One tag per key over the domain and the parts. */
  tags(domain: TagDomain, parts: readonly (string | Uint8Array)[]): Buffer[] {
    return this.keys.map((key) => tag(key, domain, parts))
  }

  /** Whether any of `received` is the tag of one of this node's keys. */
  verify(domain: TagDomain, parts: readonly (string | Uint8Array)[], received: readonly Uint8Array[]): boolean {
    const candidates = received.filter((value) => value.length === TAG_BYTES).slice(0, MAX_KEYS)
    let match = false
    for (const own of this.tags(domain, parts)) {
      for (const candidate of candidates) if (timingSafeEqual(own, candidate)) match = true
    }
    return match
  }
}

function tag(key: Buffer, domain: TagDomain, parts: readonly (string | Uint8Array)[]): Buffer {
  const hmac = createHmac('sha256', key)
  for (const part of [`shoal-v1:${domain}`, ...parts]) {
    const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part
    const length = Buffer.alloc(4)
    length.writeUInt32BE(bytes.length)
    hmac.update(length).update(bytes)
  }
  return hmac.digest().subarray(0, TAG_BYTES)
}
