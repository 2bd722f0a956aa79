import { mkdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { readTree, syncTree, type Tree } from './config-tree.js'
import { parseMirroredRegistry, type MirroredRegistry } from '../oci/registry-url.js'
import { DEFAULT_HOST_DIR, HOSTS_FILE, readHostsToml, renderHostsToml } from './hosts-toml.js'

export const BACKUP_DIR = '_backup'
const BACKUP_STAGING_DIR = '_backup.shoal-tmp'
const HOSTS_FILE_MODE = 0o644

export interface MirrorConfigInit {
  /** containerd's registry config path, e.g. /etc/containerd/certs.d. */
  configPath: string
  /** Registries to mirror; empty mirrors every registry through `_default`. */
  registries: MirroredRegistry[]
  /** URLs of this node's shoal, tried first, in order. */
  mirrorTargets: string[]
  resolveTags: boolean
  /** Keep the `[host.*]` tables of the files we replace, after ours. */
  prependExisting: boolean
}

export interface MirrorConfigResult {
  backupCreated: boolean
  /** Directories (registry hosts) that now mirror through shoal. */
  mirrored: string[]
  changed: string[]
}

/**
 * Points containerd at shoal. On the first run the whole config path is copied to `_backup/`;
 * every run then derives the result from that backup and the flags alone, so running it again
 * (even with other flags) is safe, and files of registries shoal does not mirror stay in place.
 */
export async function configureMirrors(init: MirrorConfigInit): Promise<MirrorConfigResult> {
  const backupPath = join(init.configPath, BACKUP_DIR)
  const backupCreated = !(await isDirectory(backupPath))
  const backup = backupCreated
    ? await readTree(init.configPath, [BACKUP_DIR, BACKUP_STAGING_DIR])
    : await readTree(backupPath)
  const desired: Tree = new Map(backup)
  const mirrored: string[] = []
  for (const target of mirrorTargetsOf(init, backup)) {
    const existingPath = `${target.dir}/${HOSTS_FILE}`
    const existing = backup.get(existingPath)
    const existingHosts = init.prependExisting && existing?.kind === 'file'
      ? readHostsToml(join(init.configPath, BACKUP_DIR, existingPath), existing.data.toString('utf8')).hosts
      : undefined
    const text = renderHostsToml({
      ...(target.server === undefined ? {} : { server: target.server }),
      mirrorTargets: init.mirrorTargets,
      resolveTags: init.resolveTags,
      ...(existingHosts ? { existingHosts } : {}),
    })
    desired.set(target.dir, { kind: 'dir' })
    desired.set(existingPath, { kind: 'file', data: Buffer.from(text), mode: HOSTS_FILE_MODE })
    mirrored.push(target.dir)
  }
  // Everything above may still fail on bad input; nothing is written before this point.
  if (backupCreated) await writeBackup(init.configPath, backup)
  const changed = await syncTree(init.configPath, desired, [BACKUP_DIR])
  return { backupCreated, mirrored, changed }
}

/** Restores the config path from `_backup/` and removes it. Returns false if there was nothing to restore. */
export async function restoreMirrors(configPath: string): Promise<{ restored: boolean; changed: string[] }> {
  const backupPath = join(configPath, BACKUP_DIR)
  if (!(await isDirectory(backupPath))) return { restored: false, changed: [] }
  const changed = await syncTree(configPath, await readTree(backupPath), [BACKUP_DIR])
  await rm(backupPath, { recursive: true, force: true })
  return { restored: true, changed }
}

interface HostsTarget {
  dir: string
  server?: string
}

function mirrorTargetsOf(init: MirrorConfigInit, backup: Tree): HostsTarget[] {
  if (init.registries.length > 0) return init.registries.map((registry) => ({ dir: registry.host, server: registry.server }))
  // Mirroring everything: a registry's own hosts.toml would shadow _default, so it is rewritten too.
  const targets: HostsTarget[] = [{ dir: DEFAULT_HOST_DIR }]
  for (const [path, entry] of backup) {
    const [dir, file, ...deeper] = path.split('/')
    if (dir === undefined || dir === DEFAULT_HOST_DIR || file !== HOSTS_FILE || deeper.length > 0 || entry.kind !== 'file') continue
    const server = readHostsToml(path, entry.data.toString('utf8')).server ?? defaultServerFor(dir)
    if (server !== undefined) targets.push({ dir, server })
  }
  return targets
}

function defaultServerFor(dir: string): string | undefined {
  try {
    return parseMirroredRegistry(`https://${dir}`).server
  } catch {
    return undefined
  }
}

/** Written to a staging directory first, so a crash never leaves a partial `_backup/`. */
async function writeBackup(configPath: string, tree: Tree): Promise<void> {
  await mkdir(configPath, { recursive: true })
  const staging = join(configPath, BACKUP_STAGING_DIR)
  await rm(staging, { recursive: true, force: true })
  await syncTree(staging, tree)
  await rename(staging, join(configPath, BACKUP_DIR))
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory()
  } catch {
    return false
  }
}
