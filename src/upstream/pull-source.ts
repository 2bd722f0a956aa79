import type { Readable } from 'node:stream'
import type { Digest } from '../oci/digest.js'

/** Content fetched by digest on a first pull: a blob, or a manifest (what registries count). */
export interface FirstPullRequest {
  /** The registry host containerd asked about (`?ns=`). */
  registry: string
  repository: string
  digest: Digest
  kind: 'blobs' | 'manifests'
}

/** A source's answer: the whole blob's size, and its bytes from where they were asked. */
export interface SourceBody {
  size: number
  body: Readable
  /** Who actually sends (a registry host after its hosts.toml, a peer's address). */
  server: string
}

/** Where a first pull reads from: upstream itself, or a node nearer the fetcher that relays it. */
export interface PullSource {
  kind: 'upstream' | 'peer'
  name: string
  /** The bytes of the request from byte `from` on. Throws UpstreamRefusedError when upstream refuses it to an anonymous client. */
  open(from: number, signal: AbortSignal): Promise<SourceBody>
}

/**
 * The whole content's size from an answer to a request from byte `from`: a 200 with its length
 * when asked from 0, a 206 from `from` to the end otherwise; undefined for anything else.
 */
export function wholeSize(status: number, contentLength: string | undefined, contentRange: string | undefined, from: number): number | undefined {
  if (from === 0 && status === 200) {
    const length = Number(contentLength)
    return contentLength !== undefined && Number.isSafeInteger(length) && length >= 0 ? length : undefined
  }
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(contentRange ?? '')
  if (from === 0 || status !== 206 || !match || Number(match[1]) !== from || Number(match[2]) !== Number(match[3]) - 1) return undefined
  return Number(match[3])
}
