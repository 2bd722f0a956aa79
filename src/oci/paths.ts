import { isDigest, type Digest } from './digest.js'
import { DigestInvalidError, NameInvalidError, TagInvalidError, UnsupportedError } from './errors.js'
import { isRegistryHost, isRepository, isTag, MAX_REPOSITORY_LENGTH } from './reference.js'

/** A parsed distribution API request path. */
export type DistributionPath =
  | { kind: 'base' }
  | { kind: 'manifest'; name: string; reference: { digest: Digest } | { tag: string } }
  | { kind: 'blob'; name: string; digest: Digest }

const MAX_PATH_LENGTH = 2048

/**
 * Parses the path of a `/v2/...` request. Throws an OciError that says exactly what is wrong;
 * never decodes percent-escapes, so `..` or `%2e%2e` can only ever be an invalid name.
 */
export function parseDistributionPath(path: string): DistributionPath {
  if (path === '/v2' || path === '/v2/') return { kind: 'base' }
  if (path.length > MAX_PATH_LENGTH) throw new NameInvalidError('request path is too long')
  if (!path.startsWith('/v2/')) throw new UnsupportedError(404, 'only the /v2/ distribution API is served here')
  const rest = path.slice('/v2/'.length)
  const match = /^(.+)\/(manifests|blobs)\/([^/]+)$/.exec(rest)
  if (!match) throw new UnsupportedError(404, 'path is not /v2/<name>/manifests/<reference> or /v2/<name>/blobs/<digest>')
  const [, name, kind, reference] = match as unknown as [string, string, string, string]
  if (!isRepository(name)) {
    throw new NameInvalidError(`repository name must match the distribution grammar (lowercase path components, at most ${MAX_REPOSITORY_LENGTH} characters)`)
  }
  if (kind === 'blobs') {
    if (!isDigest(reference)) throw new DigestInvalidError(reference)
    return { kind: 'blob', name, digest: reference }
  }
  if (reference.includes(':')) {
    if (!isDigest(reference)) throw new DigestInvalidError(reference)
    return { kind: 'manifest', name, reference: { digest: reference } }
  }
  if (!isTag(reference)) throw new TagInvalidError(reference)
  return { kind: 'manifest', name, reference: { tag: reference } }
}

/** Validates the `ns` query parameter containerd adds for mirrors. */
export function parseNamespaceParam(value: string | string[] | undefined): string | undefined {
  if (value === undefined || value === '') return undefined
  if (Array.isArray(value) || !isRegistryHost(value)) {
    throw new NameInvalidError('ns must be one registry host such as docker.io or 10.0.0.9:5000')
  }
  return value
}
