import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { shebangNodeFlags } from '../../src/util/node-flags.js'

describe('node flags of the shoal binary', () => {
  it('reads the flags after node in a shebang, and none from a script without', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-shebang-'))
    try {
      await writeFile(join(dir, 'a.js'), '#!/usr/bin/env -S node --foo --bar=1\nconsole.log(1)\n')
      await writeFile(join(dir, 'b.js'), 'console.log(1)\n')
      assert.deepEqual(shebangNodeFlags(join(dir, 'a.js')), ['--foo', '--bar=1'])
      assert.deepEqual(shebangNodeFlags(join(dir, 'b.js')), [])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('runs the daemon with one GC thread: concurrent GC helpers cost a swarm byte more CPU than they save (docs/benchmarks.md)', () => {
    const main = fileURLToPath(new URL('../../src/main.js', import.meta.url))
    assert.ok(shebangNodeFlags(main).includes('--single-threaded-gc'))
  })
})
