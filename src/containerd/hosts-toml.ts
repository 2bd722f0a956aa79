import { parse, stringify } from 'smol-toml'
import { ShoalError } from '../util/errors.js'

export const DEFAULT_HOST_DIR = '_default'
export const HOSTS_FILE = 'hosts.toml'
export const HOSTS_HEADER = '# Written by `shoal configuration`. `shoal cleanup` restores what was here before (kept in _backup/).\n'

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

export class InvalidHostsTomlError extends ShoalError {
  constructor(path: string, cause: unknown) {
    super(`cannot parse ${path}: ${(cause as Error).message.split('\n')[0]}`)
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
