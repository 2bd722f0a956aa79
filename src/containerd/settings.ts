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
 * (`plugins."io.containerd.grpc.v1.cri"`) and v3 (`plugins."io.containerd.cri.v1.images"`) layouts.
 */
export function settingsFromConfigFiles(files: TomlFile[], containerdMajor: number): ContainerdSettings {
  let configPath: string | undefined
  let discard: boolean | undefined
  let legacyMirrors = false
  let sandboxImage: string | undefined
  for (const file of files) {
    const found = readLayouts(file)
    configPath = found.configPath ?? configPath
    discard = found.discard ?? discard
    legacyMirrors ||= found.legacyMirrors
    sandboxImage = found.sandboxImage ?? sandboxImage
  }
  const fallbackPath = containerdMajor >= 2 ? CONTAINERD2_DEFAULT_CONFIG_PATH : ''
  const settings: ContainerdSettings = {
    source: files.length > 0 ? 'config-file' : 'defaults',
    configPaths: splitConfigPath(configPath ?? fallbackPath),
    discardUnpackedLayers: discard ?? false,
    files: files.map((file) => file.path),
    legacyMirrors,
  }
  if (sandboxImage !== undefined) settings.sandboxImage = sandboxImage
  return settings
}

type Table = Record<string, unknown>

function readLayouts(file: TomlFile): { configPath?: string; discard?: boolean; legacyMirrors: boolean; sandboxImage?: string } {
  const document = parseToml(file)
  const plugins = table(document['plugins'])
  const v1 = table(plugins['cri'])
  const v2 = table(plugins['io.containerd.grpc.v1.cri'])
  const v3 = table(plugins['io.containerd.cri.v1.images'])
  const v3Runtime = table(plugins['io.containerd.cri.v1.runtime'])
  const result: { configPath?: string; discard?: boolean; legacyMirrors: boolean; sandboxImage?: string } = { legacyMirrors: false }
  for (const cri of [v1, v2, v3]) {
    const registry = table(cri['registry'])
    if (typeof registry['config_path'] === 'string') result.configPath = registry['config_path']
    if (Object.keys(table(registry['mirrors'])).length > 0) result.legacyMirrors = true
    const discard = cri === v3 ? cri['discard_unpacked_layers'] : table(cri['containerd'])['discard_unpacked_layers']
    if (typeof discard === 'boolean') result.discard = discard
    const sandbox = cri === v3 ? table(cri['pinned_images'])['sandbox'] : cri['sandbox_image']
    if (typeof sandbox === 'string') result.sandboxImage = sandbox
  }
  if (typeof v3Runtime['sandbox_image'] === 'string') result.sandboxImage = v3Runtime['sandbox_image']
  return result
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

/** `1.6.20~ds1`, `v2.0.4` → 1, 2. */
export function majorVersion(version: string): number {
  const match = /^v?(\d+)\./.exec(version.trim())
  return match ? Number(match[1]) : 1
}
