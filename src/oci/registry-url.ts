import { ShoalError } from '../util/errors.js'
/** A registry shoal mirrors: `host` names its hosts.toml directory, `server` is its upstream. */
export interface MirroredRegistry {
  host: string
  server: string
}

export class InvalidRegistryUrlError extends ShoalError {
  constructor(value: string, why: string) {
    super(`${JSON.stringify(value)} is not a registry URL: ${why} (expected e.g. https://docker.io or http://10.0.0.9:5000)`)
  }
}

/** Parses an origin URL (scheme + host[:port], nothing else), as in `--mirrored-registries`. */
export function parseOriginUrl(value: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new InvalidRegistryUrlError(value, 'not a URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidRegistryUrlError(value, 'scheme must be http or https')
  if (url.username || url.password) throw new InvalidRegistryUrlError(value, 'credentials do not belong in the URL')
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new InvalidRegistryUrlError(value, 'no path, query or fragment allowed')
  }
  return url
}

/** `https://docker.io` → dir `docker.io`, server `https://registry-1.docker.io`. */
export function parseMirroredRegistry(value: string): MirroredRegistry {
  const url = parseOriginUrl(value)
  const server = url.host === 'docker.io' ? `${url.protocol}//registry-1.docker.io` : `${url.protocol}//${url.host}`
  return { host: url.host, server }
}
