import assert from 'node:assert/strict'
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { loadConfigFiles, settingsFromConfigFiles, settingsFromCriStatus, type ContainerdSettings } from '../../src/containerd/settings.js'
import { assertUsable, ContainerdMisconfiguredError, detectDistribution, findProblems } from '../../src/containerd/verify.js'

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/containerd/', import.meta.url))

async function statusFixture(name: string): Promise<Record<string, string>> {
  return JSON.parse(await readFile(join(FIXTURES, name), 'utf8'))
}

function misconfiguration(settings: ContainerdSettings, version: string, path = '/etc/containerd/certs.d'): ContainerdMisconfiguredError {
  try {
    assertUsable(settings, version, path)
  } catch (err) {
    assert.ok(err instanceof ContainerdMisconfiguredError)
    return err
  }
  assert.fail('expected the configuration to be refused')
}

describe('containerd 1.6 (CRI status)', () => {
  it('reads config_path and discard_unpacked_layers from a real 1.6 status', async () => {
    const settings = settingsFromCriStatus(await statusFixture('cri-status-1.6.json'))
    assert.deepEqual(settings, {
      source: 'cri-status', configPaths: ['/etc/containerd/certs.d'], discardUnpackedLayers: false,
      files: [], legacyMirrors: false, sandboxImage: 'registry.k8s.io/pause:3.6',
    })
    assert.deepEqual(findProblems(settings!, '/etc/containerd/certs.d/'), [])
  })

  it('names the path containerd reads when shoal would write elsewhere', async () => {
    const settings = settingsFromCriStatus(await statusFixture('cri-status-1.6.json'))!
    const err = misconfiguration(settings, '1.6.20', '/etc/cri/conf.d/hosts')
    assert.deepEqual(err.problems, [{ kind: 'config-path-mismatch', expected: '/etc/cri/conf.d/hosts', actual: ['/etc/containerd/certs.d'] }])
    assert.match(err.message, /--containerd-registry-config-path=\/etc\/containerd\/certs.d/)
    assert.match(err.message, /shoal.containerdRegistryConfigPath/)
  })
})

describe('containerd 1.7 (CRI status)', () => {
  it('accepts a config_path list and refuses discarded layers with the EKS fix', async () => {
    const settings = settingsFromCriStatus(await statusFixture('cri-status-1.7-eks.json'))!
    assert.deepEqual(settings.configPaths, ['/etc/containerd/certs.d', '/etc/docker/certs.d'])
    assert.equal(detectDistribution(settings), 'eks')
    const err = misconfiguration(settings, '1.7.11')
    assert.deepEqual(err.problems, [{ kind: 'discard-unpacked-layers' }])
    assert.match(err.message, /EKS/)
    assert.match(err.message, /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\]\n\s+discard_unpacked_layers = false/)
  })

  it('explains that GKE cannot be used', async () => {
    const settings = settingsFromCriStatus(await statusFixture('cri-status-1.7-gke.json'))!
    assert.equal(settings.legacyMirrors, true)
    assert.equal(detectDistribution(settings), 'gke')
    const err = misconfiguration(settings, '1.7.15')
    assert.deepEqual(err.problems, [{ kind: 'config-path-unset' }])
    assert.match(err.message, /GKE/)
  })
})

describe('containerd 2.x (config.toml)', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-ctrd-config-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('falls back to the config file when CRI status lacks the settings', async () => {
    assert.equal(settingsFromCriStatus(await statusFixture('cri-status-2.0.json')), undefined)
  })

  it('reads the v3 layout', async () => {
    const files = await loadConfigFiles(join(FIXTURES, 'v3-default.toml'))
    const settings = settingsFromConfigFiles(files, 2)
    assert.deepEqual(settings.configPaths, ['/etc/containerd/certs.d', '/etc/docker/certs.d'])
    assert.equal(settings.discardUnpackedLayers, false)
    assert.equal(settings.sandboxImage, 'registry.k8s.io/pause:3.10')
    assert.deepEqual(findProblems(settings, '/etc/containerd/certs.d'), [])
  })

  it('merges Talos imports in order, later files winning', async () => {
    const main = join(dir, 'cri.toml')
    await writeFile(main, (await readFile(join(FIXTURES, 'talos-cri.toml'), 'utf8')).replace('/etc/cri/conf.d', join(dir, 'conf.d')))
    await mkdir(join(dir, 'conf.d'))
    await copyFile(join(FIXTURES, 'talos-00-base.part'), join(dir, 'conf.d', '00-base.part'))
    const withoutPatch = settingsFromConfigFiles(await loadConfigFiles(main), 2)
    assert.equal(withoutPatch.discardUnpackedLayers, true)
    assert.deepEqual(withoutPatch.configPaths, ['/etc/cri/conf.d/hosts'])
    assert.equal(detectDistribution(withoutPatch), 'talos')
    const err = misconfiguration(withoutPatch, 'v2.0.4', '/etc/cri/conf.d/hosts')
    assert.deepEqual(err.problems, [{ kind: 'discard-unpacked-layers' }])
    assert.match(err.message, /20-shoal\.part/)
    assert.match(err.message, /\[plugins\."io\.containerd\.cri\.v1\.images"\]\n\s+discard_unpacked_layers = false/)

    await copyFile(join(FIXTURES, 'talos-20-shoal.part'), join(dir, 'conf.d', '20-shoal.part'))
    const patched = settingsFromConfigFiles(await loadConfigFiles(main), 2)
    assert.deepEqual(patched.files.map((file) => file.slice(dir.length)), ['/cri.toml', '/conf.d/00-base.part', '/conf.d/20-shoal.part'])
    assert.deepEqual(findProblems(patched, '/etc/cri/conf.d/hosts'), [])
  })

  it('uses containerd 2 defaults when there is no config file', async () => {
    const settings = settingsFromConfigFiles(await loadConfigFiles(join(dir, 'missing.toml')), 2)
    assert.equal(settings.source, 'defaults')
    assert.deepEqual(findProblems(settings, '/etc/containerd/certs.d'), [])
  })

  it('reports a v2 file without config_path as unset on containerd 1.x, with the v2 snippet', async () => {
    const settings = settingsFromConfigFiles(await loadConfigFiles(join(FIXTURES, 'v2-unset.toml')), 1)
    const err = misconfiguration(settings, '1.6.20')
    assert.deepEqual(err.problems, [{ kind: 'config-path-unset' }])
    assert.match(err.message, /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\]\n\s+config_path = "\/etc\/containerd\/certs.d"/)
  })

  it('reads the v1 layout', async () => {
    const settings = settingsFromConfigFiles(await loadConfigFiles(join(FIXTURES, 'v1-legacy.toml')), 1)
    assert.deepEqual(findProblems(settings, '/etc/containerd/certs.d'), [])
  })

  it('refuses an unparsable config with the file name', async () => {
    const broken = join(dir, 'broken.toml')
    await writeFile(broken, 'version = \n')
    await assert.rejects(loadConfigFiles(broken), /cannot parse containerd config .*broken.toml/)
  })
})
