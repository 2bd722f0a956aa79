import { chmod, lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { ShoalError } from '../util/errors.js'

/** A snapshot of a small directory tree (containerd's registry config path) in memory. */
export type TreeEntry =
  | { kind: 'dir' }
  | { kind: 'file'; data: Buffer; mode: number }
  | { kind: 'symlink'; target: string }
export type Tree = Map<string, TreeEntry>

const MAX_ENTRIES = 10_000
const MAX_FILE_BYTES = 16 * 1024 * 1024

export class ConfigTreeTooLargeError extends ShoalError {
  constructor(root: string, why: string) {
    super(`${root} is not a registry config directory shoal can manage: ${why}`)
  }
}

/** Reads every entry below `root` (paths relative, `/`-separated), skipping the top-level names in `skip`. */
export async function readTree(root: string, skip: readonly string[] = []): Promise<Tree> {
  const tree: Tree = new Map()
  async function visit(relative: string): Promise<void> {
    const names = (await readdir(join(root, relative))).sort()
    for (const name of names) {
      if (relative === '' && skip.includes(name)) continue
      const path = relative === '' ? name : `${relative}/${name}`
      if (tree.size >= MAX_ENTRIES) throw new ConfigTreeTooLargeError(root, `more than ${MAX_ENTRIES} entries`)
      const stat = await lstat(join(root, path))
      if (stat.isDirectory()) {
        tree.set(path, { kind: 'dir' })
        await visit(path)
      } else if (stat.isSymbolicLink()) {
        tree.set(path, { kind: 'symlink', target: await readlink(join(root, path)) })
      } else if (stat.isFile()) {
        if (stat.size > MAX_FILE_BYTES) throw new ConfigTreeTooLargeError(root, `${path} is larger than ${MAX_FILE_BYTES} bytes`)
        tree.set(path, { kind: 'file', data: await readFile(join(root, path)), mode: stat.mode & 0o7777 })
      }
    }
  }
  try {
    await visit('')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && tree.size === 0) return tree
    throw err
  }
  return tree
}

/**
 * Makes the tree below `root` equal to `desired`, leaving the top-level names in `preserve`
 * alone. Files are replaced by rename, so containerd never reads a half-written hosts.toml.
 * Returns the paths that changed.
 */
export async function syncTree(root: string, desired: Tree, preserve: readonly string[] = []): Promise<string[]> {
  await mkdir(root, { recursive: true })
  const current = await readTree(root, preserve)
  const changed: string[] = []
  for (const [path, entry] of [...desired].sort(([a], [b]) => a.localeCompare(b))) {
    const existing = current.get(path)
    if (existing && sameEntry(existing, entry)) continue
    if (existing && existing.kind !== entry.kind) await rm(join(root, path), { recursive: true, force: true })
    await writeEntry(join(root, path), entry)
    changed.push(path)
  }
  const extras = [...current.keys()].filter((path) => !desired.has(path)).sort((a, b) => b.localeCompare(a))
  for (const path of extras) {
    await rm(join(root, path), { recursive: true, force: true })
    changed.push(path)
  }
  return changed
}

function sameEntry(a: TreeEntry, b: TreeEntry): boolean {
  if (a.kind === 'file' && b.kind === 'file') return a.mode === b.mode && a.data.equals(b.data)
  if (a.kind === 'symlink' && b.kind === 'symlink') return a.target === b.target
  return a.kind === b.kind
}

async function writeEntry(path: string, entry: TreeEntry): Promise<void> {
  if (entry.kind === 'dir') {
    await mkdir(path, { recursive: true })
  } else if (entry.kind === 'symlink') {
    await rm(path, { force: true })
    await symlink(entry.target, path)
  } else {
    const temporary = join(dirname(path), `.${process.pid}.shoal-tmp`)
    await writeFile(temporary, entry.data, { mode: entry.mode })
    await chmod(temporary, entry.mode)
    await rename(temporary, path)
  }
}
