import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ShoalError } from './errors.js'

/**
 * A package whose private members shoal touches, with the exact release that code was written
 * for. `loadedBy` names the packages that lead to it, outermost first: bittorrent-protocol is the
 * copy webtorrent loads, found from webtorrent's folder, which need not be the one shoal would.
 */
export interface PackagePin {
  name: string
  version: string
  loadedBy: string[]
}

export class PackageVersionError extends ShoalError {}

interface LoadedPackage {
  dir: string
  version: string
  manifest: Record<string, unknown>
}

const shoalDir = dirname(fileURLToPath(import.meta.url))

/** Node's search for a bare specifier: `node_modules/<name>` in `from` and each folder above it. */
function packageDir(name: string, from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name)
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate)
    if (dirname(dir) === dir) return undefined
  }
}

/** The package `name` as the chain `loadedBy` loads it, starting from shoal's own folder. */
export function loadedPackage(name: string, loadedBy: readonly string[] = []): LoadedPackage {
  let from = shoalDir
  for (const step of [...loadedBy, name]) {
    const dir = packageDir(step, from)
    if (!dir) throw new PackageVersionError(`${step} is not installed where ${from} would load it from`)
    from = dir
  }
  const manifest = JSON.parse(readFileSync(join(from, 'package.json'), 'utf8')) as Record<string, unknown>
  return { dir: from, version: String(manifest['version']), manifest }
}

/** Throws, naming the package, if a loaded copy is not the release its pin says. */
export function assertPinned(pins: readonly PackagePin[]): void {
  for (const pin of pins) {
    const loaded = loadedPackage(pin.name, pin.loadedBy)
    if (loaded.version === pin.version) continue
    const via = pin.loadedBy.length ? ` (the copy ${pin.loadedBy.at(-1)} loads, ${loaded.dir})` : ` (${loaded.dir})`
    throw new PackageVersionError(`${pin.name} ${loaded.version} is installed${via}, but shoal's patches of it were written for ${pin.version}: pin it back or check the *-internals.ts that touches it`)
  }
}

/** The URL of a package's ESM entry point, to import exactly the copy a chain loads. */
export function packageEntryUrl(name: string, loadedBy: readonly string[]): string {
  const { dir, manifest } = loadedPackage(name, loadedBy)
  const exports = manifest['exports'] as Record<string, unknown> | string | undefined
  const entry = typeof exports === 'string' ? exports
    : typeof exports?.['import'] === 'string' ? exports['import']
      : typeof manifest['main'] === 'string' ? manifest['main'] : 'index.js'
  return pathToFileURL(join(dir, entry)).href
}
