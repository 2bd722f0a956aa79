import { parse, stringify } from 'smol-toml'

/** A registry shoal mirrors: `host` names its hosts.toml directory, `server` is its upstream. */
export interface MirroredRegistry {
  host: string
  server: string
}

export const DEFAULT_HOST_DIR = '_default'
export const HOSTS_FILE = 'hosts.toml'
export const HOSTS_HEADER = '# Written by `shoal configuration`. `shoal cleanup` restores what was here before (kept in _backup/).\n'

export class InvalidRegistryUrlError extends Error {
  constructor(value: string, why: string) {
    super(`${JSON.stringify(value)} is not a registry URL: ${why} (expected e.g. https://docker.io or http://10.0.0.9:5000)`)
    this.name = 'InvalidRegistryUrlError'
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

export function capabilitiesFor(resolveTags: boolean): string[] {
  return resolveTags ? ['pull', 'resolve'] : ['pull']
}

export interface HostsTomlInput {
  /** Upstream server; absent for `_default`. */
  server?: string
  mirrorTargets: string[]
  resolveTags: boolean
  /** `[host.*]` tables of the file this one replaces, kept after ours (`--prepend-existing`). */
  existingHosts?: Record<string, unknown>
}

export function renderHostsToml(input: HostsTomlInput): string {
  const host: Record<string, unknown> = {}
  for (const target of input.mirrorTargets) host[target] = { capabilities: capabilitiesFor(input.resolveTags) }
  for (const [url, table] of Object.entries(input.existingHosts ?? {})) {
    if (!(url in host)) host[url] = table
  }
  const document: Record<string, unknown> = {}
  if (input.server !== undefined) document['server'] = input.server
  document['host'] = host
  return HOSTS_HEADER + stringify(document)
}

export class InvalidHostsTomlError extends Error {
  constructor(path: string, cause: unknown) {
    super(`cannot parse ${path}: ${(cause as Error).message.split('\n')[0]}`)
    this.name = 'InvalidHostsTomlError'
  }
}

/** The `server` and `[host.*]` tables of an existing hosts.toml. */
export function readHostsToml(path: string, text: string): { server?: string; hosts: Record<string, unknown> } {
  let document: Record<string, unknown>
  try {
    document = parse(text) as Record<string, unknown>
  } catch (err) {
    throw new InvalidHostsTomlError(path, err)
  }
  const hosts = document['host']
  const result: { server?: string; hosts: Record<string, unknown> } = {
    hosts: typeof hosts === 'object' && hosts !== null && !Array.isArray(hosts) ? hosts as Record<string, unknown> : {},
  }
  if (typeof document['server'] === 'string') result.server = document['server']
  return result
}
