import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { freePort } from '../support/ports.js'
import { removeTestDir, startProcess, type Managed } from '../support/processes.js'
import { runShoal, SHOAL_MAIN } from '../support/shoal.js'
import { eventually } from '../support/eventually.js'

describe("the chart's post-delete cleanup: cleanup --probe-addr and cleanup-wait", () => {
  let dir: string
  let configPath: string
  let probe: Managed | undefined
  let port: number

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-cleanup-hook-'))
    configPath = join(dir, 'certs.d')
    await mkdir(join(configPath, 'docker.io'), { recursive: true })
    await writeFile(join(configPath, 'docker.io', 'hosts.toml'), 'server = "https://registry-1.docker.io"\n')
    const configured = await runShoal(['configuration', '--verify-containerd-config=false', '--containerd-registry-config-path', configPath,
      '--mirrored-registries', 'https://docker.io', '--mirror-targets', 'http://127.0.0.1:30020'])
    assert.equal(configured.code, 0, configured.stderr)
    port = await freePort('127.0.0.1')
  })
  after(async () => {
    await probe?.stop()
    await removeTestDir(dir)
  })

  it('cleanup-wait gives up when no cleanup pod answers', async () => {
    const waited = await runShoal(['cleanup-wait', '--dns-domain', 'localhost', '--probe-port', String(port), '--timeout', '3s'])
    assert.equal(waited.code, 1)
    assert.match(waited.stderr, /did not finish on every node within 3 s/)
  })

  it('restores the config, then answers /readyz until stopped, and cleanup-wait sees it', async () => {
    assert.match(await readFile(join(configPath, 'docker.io', 'hosts.toml'), 'utf8'), /127\.0\.0\.1:30020/)
    probe = startProcess('cleanup', process.execPath, [SHOAL_MAIN, 'cleanup', '--containerd-registry-config-path', configPath,
      '--probe-addr', `127.0.0.1:${port}`], join(dir, 'cleanup.log'))
    await eventually('the cleanup probe', async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200)
    assert.equal(await readFile(join(configPath, 'docker.io', 'hosts.toml'), 'utf8'), 'server = "https://registry-1.docker.io"\n')
    const waited = await runShoal(['cleanup-wait', '--dns-domain', 'localhost', '--probe-port', String(port), '--timeout', '30s'])
    assert.equal(waited.code, 0, waited.stderr)
    await probe.stop()
    assert.equal(probe.child.exitCode, 0)
  })

  it('cleanup-wait without --dns-domain is a usage error', async () => {
    const waited = await runShoal(['cleanup-wait'])
    assert.equal(waited.code, 1)
    assert.match(waited.stderr, /--dns-domain is required/)
  })
})
