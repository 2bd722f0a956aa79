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
      files: [], legacyMirrors: false, localPullSettings: [], sandboxImage: 'registry.k8s.io/pause:3.6',
    })
    assert.deepEqual(findProblems(settings!, '/etc/containerd/certs.d/', '1.6.20'), [])
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
    assert.deepEqual(findProblems(settings, '/etc/containerd/certs.d', 'v2.0.4'), [])
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
    assert.deepEqual(findProblems(patched, '/etc/cri/conf.d/hosts', 'v2.0.4'), [])
    assert.deepEqual(findProblems(patched, '/etc/cri/conf.d/hosts', 'v2.1.4'), [], 'a single config_path works on the transfer service too')
  })

  it('uses containerd 2 defaults when there is no config file', async () => {
    const settings = settingsFromConfigFiles(await loadConfigFiles(join(dir, 'missing.toml')), 2)
    assert.equal(settings.source, 'defaults')
    assert.deepEqual(findProblems(settings, '/etc/containerd/certs.d', 'v2.0.4'), [])
  })

  it('reports a v2 file without config_path as unset on containerd 1.x, with the v2 snippet', async () => {
    const settings = settingsFromConfigFiles(await loadConfigFiles(join(FIXTURES, 'v2-unset.toml')), 1)
    const err = misconfiguration(settings, '1.6.20')
    assert.deepEqual(err.problems, [{ kind: 'config-path-unset' }])
    assert.match(err.message, /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\]\n\s+config_path = "\/etc\/containerd\/certs.d"/)
  })

  it('reads the v1 layout', async () => {
    const settings = settingsFromConfigFiles(await loadConfigFiles(join(FIXTURES, 'v1-legacy.toml')), 1)
    assert.deepEqual(findProblems(settings, '/etc/containerd/certs.d', '1.6.20'), [])
  })

  it('refuses an unparsable config with the file name', async () => {
    const broken = join(dir, 'broken.toml')
    await writeFile(broken, 'version = \n')
    await assert.rejects(loadConfigFiles(broken), /cannot parse containerd config .*broken.toml/)
  })
})

describe('containerd 2.1+ (CRI pulls through the transfer service, which reads config_path as one directory)', () => {
  const expected = '/etc/containerd/certs.d'
  async function fromFixture(name: string): Promise<ContainerdSettings> {
    return settingsFromConfigFiles(await loadConfigFiles(join(FIXTURES, name)), 2)
  }
  const kinds = (settings: ContainerdSettings, version: string) => findProblems(settings, expected, version).map((problem) => problem.kind)

  it('finds what makes each config ignore the mirror on 2.0 and on 2.1', async () => {
    const cases: [fixture: string, on20: string[], on21: string[]][] = [
      ['v3-default.toml', [], ['config-path-list-ignored']],
      ['v3-eks-al2023.toml', ['discard-unpacked-layers'], ['config-path-list-ignored', 'discard-unpacked-layers']],
      ['v3-eks-al2023-layers-kept.toml', [], ['config-path-list-ignored']],
      ['v3-eks-al2023-local-pull.toml', [], []],
      ['v3-eks-al2023-single-path.toml', [], []],
      ['v3-list-max-downloads.toml', [], []],
      ['v3-legacy-table.toml', [], ['config-path-list-ignored']],
      ['v2-list.toml', [], ['config-path-list-ignored']],
      ['bottlerocket-2.1.toml', [], []],
    ]
    for (const [fixture, on20, on21] of cases) {
      const settings = await fromFixture(fixture)
      assert.deepEqual(kinds(settings, 'v2.0.4'), on20, `${fixture} on containerd 2.0`)
      assert.deepEqual(kinds(settings, 'v2.1.4'), on21, `${fixture} on containerd 2.1`)
      assert.deepEqual(kinds(settings, '2.2.0'), on21, `${fixture} on containerd 2.2`)
    }
    const none = settingsFromConfigFiles(await loadConfigFiles(join(FIXTURES, 'missing.toml')), 2)
    assert.deepEqual([kinds(none, 'v2.0.4'), kinds(none, 'v2.1.4')], [[], ['config-path-list-ignored']], 'no config at all: the default list')
  })

  it('reads use_local_image_pull and the settings that keep the local pull, later files winning', async () => {
    assert.equal((await fromFixture('v3-eks-al2023-local-pull.toml')).useLocalImagePull, true)
    assert.equal((await fromFixture('bottlerocket-2.1.toml')).useLocalImagePull, false)
    assert.deepEqual((await fromFixture('v3-list-max-downloads.toml')).localPullSettings, ['max_concurrent_downloads = 10'])
    assert.deepEqual((await fromFixture('v2-list.toml')).localPullSettings, [], 'disable_snapshot_annotations = true (the default) keeps the transfer service')
    const merged = settingsFromConfigFiles([
      { path: 'main.toml', text: 'version = 3\n[plugins."io.containerd.cri.v1.images"]\n  use_local_image_pull = true\n  disable_snapshot_annotations = false\n' },
      { path: 'drop-in.toml', text: '[plugins."io.containerd.cri.v1.images"]\n  use_local_image_pull = false\n  disable_snapshot_annotations = true\n' },
    ], 2)
    assert.deepEqual([merged.useLocalImagePull, merged.localPullSettings], [false, []])
  })

  it('ignores the version 2 tables of a version 3 file, and reads them in a version 2 file', async () => {
    assert.deepEqual((await fromFixture('v3-legacy-table.toml')).configPaths, ['/etc/containerd/certs.d', '/etc/docker/certs.d'])
    assert.deepEqual((await fromFixture('v2-list.toml')).configPaths, ['/etc/containerd/certs.d', '/etc/docker/certs.d'])
    assert.equal((await fromFixture('v2-list.toml')).sandboxImage, 'registry.k8s.io/pause:3.8')
  })

  it('names both fixes, in the node user data on EKS, and says the layers fix switches the pull path', async () => {
    const err = misconfiguration(await fromFixture('v3-eks-al2023.toml'), 'v2.1.5')
    assert.match(err.message, /containerd v2\.1\.5 pulls images for Kubernetes through its transfer service once discard_unpacked_layers is false/)
    assert.match(err.message, /"\/etc\/containerd\/certs\.d:\/etc\/docker\/certs\.d" names none, so containerd ignores every hosts\.toml/)
    assert.match(err.message, /EKS AMIs set this list\. Override it in the node user data \(AL2023 nodeadm NodeConfig spec\.containerd\.config/)
    assert.match(err.message, /\[plugins\."io\.containerd\.cri\.v1\.images"\.registry\]\n\s+config_path = "\/etc\/containerd\/certs\.d"\n\s+or\n\s+\[plugins\."io\.containerd\.cri\.v1\.images"\]\n\s+use_local_image_pull = true/)
    assert.match(err.message, /\[plugins\."io\.containerd\.cri\.v1\.images"\]\n\s+discard_unpacked_layers = false/)

    const generic = misconfiguration(await fromFixture('v3-default.toml'), 'v2.1.4')
    assert.doesNotMatch(generic.message, /once discard_unpacked_layers/)
    assert.match(generic.message, /use_local_image_pull is not set, and nothing else makes containerd fall back to the local pull/)
    assert.match(generic.message, /add to containerd's config\.toml and restart containerd:\n\s+\[plugins\."io\.containerd\.cri\.v1\.images"\.registry\]/)
  })

  it('writes the fix for the path shoal writes to', async () => {
    const err = misconfiguration(await fromFixture('v3-default.toml'), 'v2.1.4', '/etc/containerd/certs.d/shoal')
    assert.match(err.message, /config_path = "\/etc\/containerd\/certs\.d\/shoal"/)
  })
})
