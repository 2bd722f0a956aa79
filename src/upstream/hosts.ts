import { readFile } from 'node:fs/promises'
import { isAbsolute, join, resolve } from 'node:path'
import { parse } from 'smol-toml'
import { HOSTS_FILE } from '../containerd/hosts-toml.js'
import { ShoalError } from '../util/errors.js'

/** Where a registry's content comes from when nobody in the cluster holds it, as containerd would reach it. */
export interface UpstreamTarget {
  /** The registry as containerd names it in `?ns=` (e.g. `docker.io`). */
  registry: string
  /** Scheme and host of the registry API (e.g. `https://registry-1.docker.io`). */
  server: URL
  /** PEM certificates of authorities trusted besides the system's, read from the hosts.toml `ca` files. */
  ca: string[]
  /** hosts.toml `skip_verify`: the server's certificate is not checked. */
  skipVerify: boolean
}

export class InvalidUpstreamError extends ShoalError {}

const REGISTRY_NAME = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::[0-9]{1,5})?$/i

/**
 * The upstream of `registry` as containerd finds it: the `server` of
 * `<configPath>/<registry>/hosts.toml` (with its `ca` and `skip_verify`), else `https://<registry>`
 * (docker.io is served by registry-1.docker.io). Throws InvalidUpstreamError on a name that is not
 * a registry host or a hosts.toml that cannot be used; a missing file is not an error.
 */
export async function upstreamFor(registry: string, configPath: string | undefined): Promise<UpstreamTarget> {
  if (!REGISTRY_NAME.test(registry)) throw new InvalidUpstreamError(`${JSON.stringify(registry.slice(0, 100))} is not a registry host name`)
  const fallback: UpstreamTarget = { registry, server: new URL(`https://${registry === 'docker.io' ? 'registry-1.docker.io' : registry}`), ca: [], skipVerify: false }
  if (!configPath) return fallback
  const directory = join(configPath, registry)
  const path = join(directory, HOSTS_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback
    throw new InvalidUpstreamError(`cannot read ${path}: ${(err as Error).message}`)
  }
  let document: Record<string, unknown>
  try {
    document = parse(text) as Record<string, unknown>
  } catch (err) {
    throw new InvalidUpstreamError(`cannot parse ${path}: ${(err as Error).message.split('\n')[0]}`)
  }
  return {
    registry,
    server: document['server'] === undefined ? fallback.server : serverUrl(path, document['server']),
    ca: await readCertificates(path, caFiles(path, directory, document['ca'])),
    skipVerify: skipVerify(path, document['skip_verify']),
  }
}

function serverUrl(path: string, value: unknown): URL {
  let url: URL | undefined
  try {
    url = typeof value === 'string' ? new URL(value) : undefined
  } catch {
    url = undefined
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) throw new InvalidUpstreamError(`${path}: server must be an http(s) URL, not ${JSON.stringify(value)}`)
  return new URL(url.origin)
}

/** containerd takes `ca` as one path or a list, relative to the registry's directory. */
function caFiles(path: string, directory: string, value: unknown): string[] {
  if (value === undefined) return []
  const list = typeof value === 'string' ? [value] : Array.isArray(value) && value.every((item) => typeof item === 'string') ? value as string[] : undefined
  if (!list) throw new InvalidUpstreamError(`${path}: ca must be a path or a list of paths`)
  return list.map((file) => isAbsolute(file) ? file : resolve(directory, file))
}

async function readCertificates(path: string, files: string[]): Promise<string[]> {
  return Promise.all(files.map(async (file) => {
    const pem = await readFile(file, 'utf8').catch((err: Error) => {
      throw new InvalidUpstreamError(`${path}: cannot read the ca file ${file}: ${err.message}`)
    })
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new InvalidUpstreamError(`${path}: the ca file ${file} holds no PEM certificate`)
    return pem
  }))
}

function skipVerify(path: string, value: unknown): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw new InvalidUpstreamError(`${path}: skip_verify must be true or false`)
  return value
}
