import type { ContainerdSettings } from './settings.js'

export interface ContainerdVersion {
  major: number
  minor: number
}

/** `1.6.20~ds1`, `v2.1.4` → 1.6, 2.1; what does not parse counts as 1.0. */
export function parseContainerdVersion(version: string): ContainerdVersion {
  const match = /^v?(\d+)\.(\d+)/.exec(version.trim())
  return match ? { major: Number(match[1]), minor: Number(match[2]) } : { major: 1, minor: 0 }
}

/**
 * How CRI pulls images, which decides how containerd reads `config_path`: the containerd client
 * (`local`) splits it at `:` and looks in each directory; the transfer service (`transfer`,
 * containerd 2.1+) takes it as one directory, so a list names none and every hosts.toml is
 * ignored without a log line (containerd issues 12415, 12808).
 */
export interface PullPath {
  kind: 'local' | 'transfer'
  /** Why CRI takes this path, in the words of containerd's config. */
  reason: string
}

/**
 * The path CRI takes once `discard_unpacked_layers` is false, as shoal needs (containerd 2.1+
 * keeps the local pull while it is true, so fixing it alone switches a node over).
 */
export function criPullPath(settings: ContainerdSettings, version: string): PullPath {
  const { major, minor } = parseContainerdVersion(version)
  if (major < 2 || (major === 2 && minor < 1)) return { kind: 'local', reason: `containerd ${version} pulls through its client only` }
  if (settings.useLocalImagePull) return { kind: 'local', reason: 'use_local_image_pull = true' }
  const trigger = settings.localPullSettings[0]
  if (trigger) return { kind: 'local', reason: `${trigger} makes containerd fall back to the local pull` }
  return { kind: 'transfer', reason: 'use_local_image_pull is not set, and nothing else makes containerd fall back to the local pull' }
}
