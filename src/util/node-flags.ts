import { readFileSync } from 'node:fs'

/**
 * The node flags in a script's `#!/usr/bin/env -S node <flags>` line: how the `shoal` binary
 * runs, so processes started with `node <script>` (demo, tests, benchmarks) run the same way.
 */
export function shebangNodeFlags(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0] ?? ''
  const words = first.startsWith('#!') ? first.slice(2).trim().split(/\s+/) : []
  const node = words.indexOf('node')
  return node < 0 ? [] : words.slice(node + 1)
}
