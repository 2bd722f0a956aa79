import assert from 'node:assert/strict'
import { mkdtemp, mkdir, readFile, readdir, rm, symlink, writeFile, readlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { renderHostsToml } from '../../src/containerd/hosts-toml.js'
import { InvalidRegistryUrlError, parseMirroredRegistry } from '../../src/oci/registry-url.js'
import { readTree } from '../../src/containerd/config-tree.js'
import { configureMirrors, restoreMirrors, type MirrorConfigInit } from '../../src/containerd/mirror-config.js'

const HEADER = '# Written by `shoal configuration`. `shoal cleanup` restores what was here before (kept in _backup/).\n'

describe('mirrored registry URLs', () => {
  it('maps docker.io to its real server and keeps the scheme and port of others', () => {
    assert.deepEqual(parseMirroredRegistry('https://docker.io'), { host: 'docker.io', server: 'https://registry-1.docker.io' })
    assert.deepEqual(parseMirroredRegistry('https://ghcr.io/'), { host: 'ghcr.io', server: 'https://ghcr.io' })
    assert.deepEqual(parseMirroredRegistry('http://10.0.0.9:5000'), { host: '10.0.0.9:5000', server: 'http://10.0.0.9:5000' })
  })

  it('refuses what is not an origin URL', () => {
    for (const bad of ['docker.io', 'ftp://docker.io', 'https://docker.io/v2', 'https://u:p@docker.io', 'https://docker.io?x=1', '']) {
      assert.throws(() => parseMirroredRegistry(bad), InvalidRegistryUrlError, bad)
    }
  })
})

describe('hosts.toml text', () => {
  it('puts mirror targets first with pull and resolve', () => {
    assert.equal(renderHostsToml({ server: 'https://registry-1.docker.io', mirrorTargets: ['http://127.0.0.1:30020', 'http://127.0.0.1:30021'], resolveTags: true }),
      HEADER +
      'server = "https://registry-1.docker.io"\n' +
      '\n' +
      '[host."http://127.0.0.1:30020"]\n' +
      'capabilities = [ "pull", "resolve" ]\n' +
      '\n' +
      '[host."http://127.0.0.1:30021"]\n' +
      'capabilities = [ "pull", "resolve" ]\n')
  })

  it('has no server for _default and only pull without tag resolution', () => {
    assert.equal(renderHostsToml({ mirrorTargets: ['http://127.0.0.1:5000'], resolveTags: false }),
      HEADER +
      '[host."http://127.0.0.1:5000"]\n' +
      'capabilities = [ "pull" ]\n')
  })

  it('appends existing hosts after its own, never duplicating a target', () => {
    const text = renderHostsToml({
      server: 'https://ghcr.io',
      mirrorTargets: ['http://127.0.0.1:5000'],
      resolveTags: true,
      existingHosts: {
        'https://mirror.corp': { capabilities: ['pull'], skip_verify: true },
        'http://127.0.0.1:5000': { capabilities: ['pull'] },
      },
    })
    assert.equal(text,
      HEADER +
      'server = "https://ghcr.io"\n' +
      '\n' +
      '[host."http://127.0.0.1:5000"]\n' +
      'capabilities = [ "pull", "resolve" ]\n' +
      '\n' +
      '[host."https://mirror.corp"]\n' +
      'capabilities = [ "pull" ]\n' +
      'skip_verify = true\n')
  })
})

describe('configuration and cleanup of the registry config path', () => {
  let root: string
  let configPath: string
  const base = (): MirrorConfigInit => ({
    configPath,
    registries: [parseMirroredRegistry('https://docker.io'), parseMirroredRegistry('http://10.0.0.9:5000')],
    mirrorTargets: ['http://127.0.0.1:30020'],
    resolveTags: true,
    prependExisting: false,
  })

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'shoal-hosts-'))
    configPath = join(root, 'certs.d')
    await mkdir(join(configPath, 'docker.io'), { recursive: true })
    await writeFile(join(configPath, 'docker.io', 'hosts.toml'), 'server = "https://registry-1.docker.io"\n\n[host."https://mirror.corp"]\ncapabilities = ["pull"]\n')
    await mkdir(join(configPath, 'private.corp'))
    await writeFile(join(configPath, 'private.corp', 'hosts.toml'), 'server = "https://private.corp"\nca = "ca.crt"\n')
    await writeFile(join(configPath, 'private.corp', 'ca.crt'), 'CERT', { mode: 0o600 })
    await symlink('private.corp', join(configPath, 'alias.corp'))
  })
  afterEach(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('backs up everything once and writes one hosts.toml per mirrored registry', async () => {
    const before = await readTree(configPath)
    const result = await configureMirrors(base())
    assert.equal(result.backupCreated, true)
    assert.deepEqual(result.mirrored, ['docker.io', '10.0.0.9:5000'])
    assert.deepEqual(await readTree(join(configPath, '_backup')), before)
    const docker = await readFile(join(configPath, 'docker.io', 'hosts.toml'), 'utf8')
    assert.ok(docker.includes('server = "https://registry-1.docker.io"'))
    assert.ok(docker.includes('[host."http://127.0.0.1:30020"]'))
    assert.ok(!docker.includes('mirror.corp'), 'without --prepend-existing the old hosts are dropped')
    assert.ok((await readFile(join(configPath, '10.0.0.9:5000', 'hosts.toml'), 'utf8')).includes('server = "http://10.0.0.9:5000"'))
    assert.equal(await readFile(join(configPath, 'private.corp', 'ca.crt'), 'utf8'), 'CERT', 'other registries keep their files')
    assert.equal(await readlink(join(configPath, 'alias.corp')), 'private.corp')
  })

  it('keeps the old [host.*] entries after its own with --prepend-existing', async () => {
    await configureMirrors({ ...base(), prependExisting: true })
    const docker = await readFile(join(configPath, 'docker.io', 'hosts.toml'), 'utf8')
    assert.ok(docker.indexOf('127.0.0.1:30020') < docker.indexOf('mirror.corp'))
  })

  it('is idempotent and derives every run from the first backup', async () => {
    await configureMirrors(base())
    const first = await readTree(configPath)
    const again = await configureMirrors(base())
    assert.equal(again.backupCreated, false)
    assert.deepEqual(again.changed, [])
    assert.deepEqual(await readTree(configPath), first)
    await configureMirrors({ ...base(), registries: [parseMirroredRegistry('https://docker.io')] })
    assert.deepEqual((await readdir(configPath)).sort(), ['_backup', 'alias.corp', 'docker.io', 'private.corp'])
  })

  it('mirrors every registry through _default and rewrites hosts.toml files that would shadow it', async () => {
    await configureMirrors({ ...base(), registries: [] })
    const fallback = await readFile(join(configPath, '_default', 'hosts.toml'), 'utf8')
    assert.ok(!fallback.includes('server ='))
    const privateHosts = await readFile(join(configPath, 'private.corp', 'hosts.toml'), 'utf8')
    assert.ok(privateHosts.includes('server = "https://private.corp"') && privateHosts.includes('127.0.0.1:30020'))
  })

  it('cleanup restores exactly what was there and can run twice', async () => {
    const before = await readTree(configPath)
    await configureMirrors({ ...base(), registries: [] })
    assert.deepEqual((await restoreMirrors(configPath)).restored, true)
    assert.deepEqual(await readTree(configPath), before)
    assert.deepEqual(await restoreMirrors(configPath), { restored: false, changed: [] })
    assert.deepEqual(await readTree(configPath), before)
  })

  it('starts from a config path that does not exist yet', async () => {
    const fresh = join(root, 'fresh', 'certs.d')
    await configureMirrors({ ...base(), configPath: fresh })
    assert.ok((await readFile(join(fresh, 'docker.io', 'hosts.toml'), 'utf8')).includes('127.0.0.1:30020'))
    await restoreMirrors(fresh)
    assert.deepEqual(await readdir(fresh), [])
  })

  it('refuses an unparsable existing hosts.toml with --prepend-existing and changes nothing', async () => {
    await writeFile(join(configPath, 'docker.io', 'hosts.toml'), 'server = [broken')
    const before = await readTree(configPath)
    await assert.rejects(configureMirrors({ ...base(), prependExisting: true }), /cannot parse .*docker.io\/hosts.toml/)
    assert.deepEqual(await readTree(configPath), before, 'not even a _backup is left behind')
  })
})
