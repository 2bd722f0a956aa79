import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, join } from 'node:path'
import { glob } from './glob.js'
import { parse } from 'smol-toml'
import { ShoalError } from '../util/errors.js'

/** The two containerd settings shoal depends on, and where they were read. */
export interface ContainerdSettings {
  source: 'cri-status' | 'config-file' | 'defaults'
  /** Directories containerd reads hosts.toml from (config_path may list several, `:`-separated). */
  configPaths: string[]
  discardUnpackedLayers: boolean
  /** Files read, main config first, then its imports in order. */
  files: string[]
  /** Other facts that select the advice given: `registry.mirrors` in use, sandbox image. */
  legacyMirrors: boolean
  sandboxImage?: string
  /** `use_local_image_pull` (containerd 2.1+) where a config file sets it. */
  useLocalImagePull?: boolean
  /**
   * Settings that make containerd 2.1+ pull through the client instead of the transfer service
   * even without use_local_image_pull, named as in containerd's config (discard_unpacked_layers
   * aside: shoal needs it false).
   */
  localPullSettings: string[]
}

export const DEFAULT_CONTAINERD_CONFIG = '/etc/containerd/config.toml'
/** containerd 2.x's default config_path; 1.x has none. */
export const CONTAINERD2_DEFAULT_CONFIG_PATH = '/etc/containerd/certs.d:/etc/docker/certs.d'

export class ContainerdConfigParseError extends ShoalError {
  constructor(file: string, cause: unknown) {
    super(`cannot parse containerd config ${file}: ${(cause as Error).message.split('\n')[0]}`)
  }
}

/**
 * Settings from CRI `Status{verbose: true}` info (containerd 1.6/1.7 embed the CRI plugin
 * config as JSON under `config`). Undefined when that info does not carry them (2.x).
 */
export function settingsFromCriStatus(info: Record<string, string>): ContainerdSettings | undefined {
  if (typeof info['config'] !== 'string') return undefined
  let config: { registry?: { configPath?: unknown; mirrors?: unknown }; containerd?: { discardUnpackedLayers?: unknown }; sandboxImage?: unknown }
  try {
    config = JSON.parse(info['config'])
  } catch {
    return undefined
  }
  const configPath = config.registry?.configPath
  const discard = config.containerd?.discardUnpackedLayers
  if (typeof configPath !== 'string' || typeof discard !== 'boolean') return undefined
  const mirrors = config.registry?.mirrors
  const settings: ContainerdSettings = {
    source: 'cri-status',
    configPaths: splitConfigPath(configPath),
    discardUnpackedLayers: discard,
    files: [],
    legacyMirrors: typeof mirrors === 'object' && mirrors !== null && Object.keys(mirrors).length > 0,
    localPullSettings: [],
  }
  if (typeof config.sandboxImage === 'string') settings.sandboxImage = config.sandboxImage
  return settings
}

export interface TomlFile {
  path: string
  text: string
}

/**
 * Settings from containerd config files (main file then imports, later files win, as
 * containerd merges them). Understands the v1 (`plugins.cri`), v2
 * (`plugins."io.containerd.grpc.v1.cri"`) and v3 (`plugins."io.containerd.cri.v1.images"`)
 * layouts; containerd 2.x reads the older two only when the main file's `version` is below 3
 * (it migrates them then), so in a version 3 file they count for nothing.
 */
export function settingsFromConfigFiles(files: TomlFile[], containerdMajor: number): ContainerdSettings {
  const documents = files.map(parseToml)
  const legacyLayouts = containerdMajor < 2 || configVersion(documents[0]) < 3
  const found: ImageKeys = {}
  for (const document of documents) Object.assign(found, readLayouts(document, legacyLayouts))
  const fallbackPath = containerdMajor >= 2 ? CONTAINERD2_DEFAULT_CONFIG_PATH : ''
  const settings: ContainerdSettings = {
    source: files.length > 0 ? 'config-file' : 'defaults',
    configPaths: splitConfigPath(found.configPath ?? fallbackPath),
    discardUnpackedLayers: found.discard ?? false,
    files: files.map((file) => file.path),
    legacyMirrors: found.mirrors === true,
    localPullSettings: localPullSettings(found),
  }
  if (found.sandboxImage !== undefined) settings.sandboxImage = found.sandboxImage
  if (found.useLocalImagePull !== undefined) settings.useLocalImagePull = found.useLocalImagePull
  return settings
}

type Table = Record<string, unknown>

/** The CRI image keys shoal reads, as one file sets them (absent: not set there). */
interface ImageKeys {
  configPath?: string
  discard?: boolean
  sandboxImage?: string
  mirrors?: true
  configs?: true
  auths?: true
  useLocalImagePull?: boolean
  disableSnapshotAnnotations?: boolean
  maxConcurrentDownloads?: number
  imagePullWithSyncFs?: boolean
}

/** containerd's default when max_concurrent_downloads is unset; any other value keeps the local pull. */
const DEFAULT_MAX_CONCURRENT_DOWNLOADS = 3

/** What makes containerd 2.1+ fall back from the transfer service (its CheckLocalImagePullConfigs, Linux). */
function localPullSettings(keys: ImageKeys): string[] {
  return [
    keys.disableSnapshotAnnotations === false ? 'disable_snapshot_annotations = false' : '',
    keys.mirrors ? 'registry.mirrors' : '',
    keys.configs ? 'registry.configs' : '',
    keys.auths ? 'registry.auths' : '',
    keys.maxConcurrentDownloads !== undefined && keys.maxConcurrentDownloads !== DEFAULT_MAX_CONCURRENT_DOWNLOADS ? `max_concurrent_downloads = ${keys.maxConcurrentDownloads}` : '',
    keys.imagePullWithSyncFs ? 'image_pull_with_sync_fs = true' : '',
  ].filter(Boolean)
}

function readLayouts(document: Table, legacyLayouts: boolean): ImageKeys {
  const plugins = table(document['plugins'])
  const keys: ImageKeys = {}
  if (legacyLayouts) {
    for (const cri of [table(plugins['cri']), table(plugins['io.containerd.grpc.v1.cri'])]) {
      const containerd = table(cri['containerd'])
      // The v2 keys where containerd's migration to the v3 images table puts them.
      Object.assign(keys, imageKeys({ ...cri, discard_unpacked_layers: containerd['discard_unpacked_layers'],
        disable_snapshot_annotations: containerd['disable_snapshot_annotations'], pinned_images: { sandbox: cri['sandbox_image'] } }))
    }
  }
  Object.assign(keys, imageKeys(table(plugins['io.containerd.cri.v1.images'])))
  const runtimeSandbox = table(plugins['io.containerd.cri.v1.runtime'])['sandbox_image']
  if (typeof runtimeSandbox === 'string') keys.sandboxImage = runtimeSandbox
  return keys
}

/** The keys a CRI image table (v3 shape) sets; those it does not set are left out, so they do not override. */
function imageKeys(images: Table): ImageKeys {
  const registry = table(images['registry'])
  const [configPath, sandbox] = [registry['config_path'], table(images['pinned_images'])['sandbox']]
  const [discard, useLocal, annotations, syncFs] = ['discard_unpacked_layers', 'use_local_image_pull', 'disable_snapshot_annotations', 'image_pull_with_sync_fs']
    .map((key) => images[key])
  const downloads = images['max_concurrent_downloads']
  const keys: ImageKeys = {
    ...typeof configPath === 'string' && { configPath },
    ...typeof sandbox === 'string' && { sandboxImage: sandbox },
    ...typeof discard === 'boolean' && { discard },
    ...typeof useLocal === 'boolean' && { useLocalImagePull: useLocal },
    ...typeof annotations === 'boolean' && { disableSnapshotAnnotations: annotations },
    ...typeof syncFs === 'boolean' && { imagePullWithSyncFs: syncFs },
    ...typeof downloads === 'number' && { maxConcurrentDownloads: downloads },
  }
  for (const key of ['mirrors', 'configs', 'auths'] as const) if (Object.keys(table(registry[key])).length > 0) keys[key] = true
  return keys
}

/** A file's `version` (containerd treats a missing one as 1). */
function configVersion(document: Table | undefined): number {
  const version = document?.['version']
  return typeof version === 'number' ? version : 1
}

/** Reads the main config and every file its `imports` name (globs allowed), in containerd's order. */
export async function loadConfigFiles(mainPath: string): Promise<TomlFile[]> {
  const files: TomlFile[] = []
  const seen = new Set<string>()
  async function load(path: string): Promise<void> {
    if (seen.has(path) || seen.size > 256) return
    seen.add(path)
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    const file = { path, text }
    files.push(file)
    const imports = parseToml(file)['imports']
    if (!Array.isArray(imports)) return
    for (const pattern of imports.filter((item): item is string => typeof item === 'string')) {
      const absolute = isAbsolute(pattern) ? pattern : join(dirname(path), pattern)
      for (const match of await glob(absolute)) await load(match)
    }
  }
  await load(mainPath)
  return files
}

function parseToml(file: TomlFile): Table {
  try {
    return parse(file.text) as Table
  } catch (err) {
    throw new ContainerdConfigParseError(file.path, err)
  }
}

function table(value: unknown): Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Table : {}
}

function splitConfigPath(value: string): string[] {
  return value.split(':').map((path) => path.trim()).filter((path) => path !== '')
}
