import { readdir } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/**
 * Expands a path whose last component may hold `*` and `?` wildcards (what containerd's
 * `imports` use, e.g. /etc/cri/conf.d/*.part). Results are sorted, as Go's filepath.Glob returns them.
 */
export async function glob(pattern: string): Promise<string[]> {
  const name = basename(pattern)
  if (!/[*?[]/.test(name)) return [pattern]
  const directory = dirname(pattern)
  const matcher = new RegExp(`^${name.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`)
  let names: string[]
  try {
    names = await readdir(directory)
  } catch {
    return []
  }
  return names.filter((entry) => matcher.test(entry)).sort().map((entry) => join(directory, entry))
}
