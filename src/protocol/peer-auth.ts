import { randomBytes } from 'node:crypto'
import type { ClusterKey } from '../net/cluster-key.js'
import type { ReplayGuard } from '../net/replay-guard.js'

/**
 * Authentication of the HTTP API between nodes with the cluster key. A request carries
 * `Shoal-Auth: v1 <ms> <nonce> <tags>` over its method and path; a 2xx answer carries
 * `Shoal-Auth: v1 <tags>` over the request's nonce, its status and the headers that say what
 * the body is (length, digest, range, wire port, infohash). Bodies are bound through those:
 * blobs and manifests hash to the digest, metainfo to the infohash.
 */
export const AUTH_HEADER = 'Shoal-Auth'
const VERSION = 'v1'
/** Headers of an answer that its tags cover, in this order. */
export const SIGNED_ANSWER_HEADERS = ['content-length', 'content-range', 'docker-content-digest', 'shoal-wire-port', 'shoal-infohash'] as const

export interface SignedRequest {
  header: string
  nonce: string
}

export function signRequest(key: ClusterKey, method: string, path: string, nowMs = Date.now()): SignedRequest {
  const nonce = randomBytes(12).toString('hex')
  const tags = key.tags('http-request', [method, path, String(nowMs), nonce])
  return { header: `${VERSION} ${nowMs} ${nonce} ${encodeTags(tags)}`, nonce }
}

/** The request's nonce if its header proves the key and is fresh; otherwise why not. */
export function verifyRequest(key: ClusterKey, replay: ReplayGuard, method: string, path: string, header: string | undefined): { nonce: string } | { problem: string } {
  const parts = header?.split(' ') ?? []
  if (parts.length !== 4 || parts[0] !== VERSION) return { problem: `no valid ${AUTH_HEADER} header` }
  const [, stamp, nonce, tags] = parts as [string, string, string, string]
  if (!/^\d{1,15}$/.test(stamp) || !/^[0-9a-f]{24}$/.test(nonce)) return { problem: `malformed ${AUTH_HEADER} header` }
  if (!key.verify('http-request', [method, path, stamp, nonce], decodeTags(tags))) return { problem: 'not signed with a key of this cluster' }
  const stale = replay.check(Number(stamp), nonce)
  return stale ? { problem: stale } : { nonce }
}

export function signAnswer(key: ClusterKey, nonce: string, status: number, header: (name: string) => string | undefined): string {
  return `${VERSION} ${encodeTags(key.tags('http-response', answerParts(nonce, status, header)))}`
}

export function verifyAnswer(key: ClusterKey, nonce: string, status: number, header: (name: string) => string | undefined): boolean {
  const parts = header(AUTH_HEADER)?.split(' ') ?? []
  if (parts.length !== 2 || parts[0] !== VERSION) return false
  return key.verify('http-response', answerParts(nonce, status, header), decodeTags(parts[1]!))
}

function answerParts(nonce: string, status: number, header: (name: string) => string | undefined): string[] {
  return [nonce, String(status), ...SIGNED_ANSWER_HEADERS.map((name) => header(name) ?? '')]
}

function encodeTags(tags: Buffer[]): string {
  return tags.map((tag) => tag.toString('base64url')).join(',')
}

function decodeTags(text: string): Buffer[] {
  return text.split(',').slice(0, 8).map((tag) => Buffer.from(tag, 'base64url'))
}
