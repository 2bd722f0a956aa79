import { isDigest, type Digest } from './digest.js'

/** A fully qualified image name as containerd stores it: `registry/repository[:tag][@digest]`. */
export interface ImageReference {
  registry: string
  repository: string
  tag?: string
  digest?: Digest
}

const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
const REPOSITORY_PATTERN = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`)
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/
const DOMAIN_COMPONENT = '(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])'
const REGISTRY_PATTERN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]{1,5})?$`)
export const MAX_REPOSITORY_LENGTH = 255

export function isRepository(name: string): boolean {
  return name.length <= MAX_REPOSITORY_LENGTH && REPOSITORY_PATTERN.test(name)
}

export function isTag(tag: string): boolean {
  return TAG_PATTERN.test(tag)
}

/** A registry host as containerd writes it in `?ns=` and in image names: `host[:port]`. */
export function isRegistryHost(host: string): boolean {
  return host.length <= 255 && REGISTRY_PATTERN.test(host)
}

/**
 * Parses a containerd image name. Returns undefined for names that are not fully qualified
 * references (CRI also records images under their bare config digest).
 */
export function parseImageName(name: string): ImageReference | undefined {
  let rest = name
  let digest: Digest | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    const candidate = rest.slice(at + 1)
    if (!isDigest(candidate)) return undefined
    digest = candidate
    rest = rest.slice(0, at)
  }
  const slash = rest.indexOf('/')
  if (slash <= 0) return undefined
  const registry = rest.slice(0, slash)
  let repository = rest.slice(slash + 1)
  let tag: string | undefined
  const colon = repository.lastIndexOf(':')
  if (colon >= 0) {
    tag = repository.slice(colon + 1)
    repository = repository.slice(0, colon)
    if (!isTag(tag)) return undefined
  }
  if (!isRegistryHost(registry) || !isRepository(repository)) return undefined
  if (!registry.includes('.') && !registry.includes(':') && registry !== 'localhost') return undefined
  const reference: ImageReference = { registry, repository }
  if (tag !== undefined) reference.tag = tag
  if (digest !== undefined) reference.digest = digest
  return reference
}

/** `registry/repository:tag`, the key a tag is advertised and resolved under. */
export function tagReference(registry: string, repository: string, tag: string): string {
  return `${registry}/${repository}:${tag}`
}
