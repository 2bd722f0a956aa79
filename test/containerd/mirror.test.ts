import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { readTree } from '../../src/containerd/config-tree.js'
import { OCI_INDEX, OCI_MANIFEST } from '../../src/oci/mediatype.js'
import { startContainerd, type ContainerdNode } from '../support/containerd.js'
import { rootTestsUnavailable } from '../support/environment.js'
import { buildImage } from '../support/images.js'
import { freePort } from '../support/ports.js'

import { metricValue, runShoal, startShoal, type ShoalProcess } from '../support/shoal.js'
import { pushImage, startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream.js'
import { eventually } from '../support/eventually.js'

const skip = rootTestsUnavailable(['containerd', 'docker-registry'])

describe('shoal as the mirror of a real containerd', { skip }, () => {
  let dir: string
  let upstream: UpstreamRegistry
  let containerd: ContainerdNode
  let shoal: ShoalProcess
  let certsBefore: Awaited<ReturnType<typeof readTree>>
  let image: ReturnType<typeof buildImage>

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-ctrd-'))
    upstream = await startUpstreamRegistry(join(dir, 'upstream'), { host: '127.0.0.1', port: await freePort() })
    image = buildImage({ registry: upstream.host, repository: 'test/big', tag: 'v1', layerSizes: [60 * 1024 * 1024, 2048], withIndex: true })
    await pushImage(upstream.url, image)
    containerd = await startContainerd(join(dir, 'node'))
    certsBefore = await readTree(containerd.registryConfigPath)
    shoal = await startShoal({
      dir, name: 'shoal', registryAddr: `127.0.0.1:${await freePort()}`, metricsAddr: `127.0.0.1:${await freePort()}`,
      args: ['--containerd-sock', containerd.socket, '--containerd-content-path', containerd.contentPath,
        '--containerd-registry-config-path', containerd.registryConfigPath, '--containerd-config-file', containerd.configFile,
        '--data-dir', join(dir, 'data')],
    })
  })

  after(async () => {
    await shoal?.stop()
    await containerd?.stop()
    await upstream?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('configuration writes hosts.toml that containerd follows to shoal for a CRI pull', async () => {
    const result = await runShoal(['configuration', '--containerd-sock', containerd.socket, '--containerd-config-file', containerd.configFile,
      '--containerd-registry-config-path', containerd.registryConfigPath,
      '--mirrored-registries', upstream.url, '--mirror-targets', shoal.registryUrl])
    assert.equal(result.code, 0, result.stderr + result.stdout)
    const hosts = await readFile(join(containerd.registryConfigPath, upstream.host, 'hosts.toml'), 'utf8')
    assert.ok(hosts.includes(`server = "${upstream.url}"`) && hosts.includes(`[host."${shoal.registryUrl}"]`), hosts)

    const ref = await containerd.cri.pullImage(image.name, { timeoutMs: 120_000 })
    assert.match(ref, /^sha256:[a-f0-9]{64}$/)
    const metrics = await (await fetch(`${shoal.metricsUrl}/metrics`)).text()
    assert.ok(metricValue(metrics, 'shoal_mirror_requests_total', { registry: upstream.host, cache: 'miss' }) >= 1,
      'containerd asked shoal first (and shoal, not having the image yet, said 404)')
  })

  it('serves the pulled manifests by tag and by digest to another client', async () => {
    const base = `${shoal.registryUrl}/v2/${image.repository}`
    const byTag = await fetch(`${base}/manifests/${image.tag}?ns=${upstream.host}`)
    assert.equal(byTag.status, 200)
    assert.equal(byTag.headers.get('content-type'), OCI_INDEX)
    assert.equal(byTag.headers.get('docker-content-digest'), image.index!.digest)
    assert.ok(Buffer.from(await byTag.arrayBuffer()).equals(image.index!.bytes))

    const head = await fetch(`${base}/manifests/${image.tag}?ns=${upstream.host}`, { method: 'HEAD' })
    assert.equal(head.headers.get('content-length'), String(image.index!.bytes.length))

    const byDigest = await fetch(`${base}/manifests/${image.manifest.digest}?ns=${upstream.host}`)
    assert.equal(byDigest.status, 200)
    assert.equal(byDigest.headers.get('content-type'), OCI_MANIFEST)
    assert.ok(Buffer.from(await byDigest.arrayBuffer()).equals(image.manifest.bytes))
  })

  it('serves blobs whole and ranged, byte for byte, with the headers containerd needs', async () => {
    const layer = image.layers[0]!
    const url = `${shoal.registryUrl}/v2/${image.repository}/blobs/${layer.digest}?ns=${upstream.host}`
    const head = await fetch(url, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('docker-content-digest'), layer.digest)
    assert.equal(head.headers.get('content-length'), String(layer.bytes.length))
    assert.equal(head.headers.get('content-type'), 'application/octet-stream')
    const whole = await fetch(url)
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(layer.bytes))
    const start = 10 * 1024 * 1024 + 7
    const ranged = await fetch(url, { headers: { range: `bytes=${start}-` } })
    assert.equal(ranged.status, 206)
    assert.equal(ranged.headers.get('content-range'), `bytes ${start}-${layer.bytes.length - 1}/${layer.bytes.length}`)
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(layer.bytes.subarray(start)))
    const config = await fetch(`${shoal.registryUrl}/v2/${image.repository}/blobs/${image.config.digest}`)
    assert.ok(Buffer.from(await config.arrayBuffer()).equals(image.config.bytes))
  })

  it('survives a containerd restart and serves again', async () => {
    await containerd.process.stop()
    const started = performance.now()
    const down = await fetch(`${shoal.registryUrl}/v2/${image.repository}/blobs/${image.config.digest}`)
    assert.ok([404, 503].includes(down.status), `with containerd down the answer is 404 or 503 (containerd goes upstream), never 500 (got ${down.status})`)
    assert.ok(performance.now() - started < 3_000)
    await eventually('not ready while containerd is down', async () => (await fetch(`${shoal.registryUrl}/readyz`)).status === 503, 15_000)
    const restarted = await startContainerd(containerd.dir)
    containerd = restarted
    await eventually('shoal serving again', async () =>
      (await fetch(`${shoal.registryUrl}/v2/${image.repository}/blobs/${image.config.digest}`)).status === 200, 20_000)
    await eventually('ready again', async () => (await fetch(`${shoal.registryUrl}/readyz`)).status === 200, 15_000)
    assert.equal(shoal.process.child.exitCode, null)
  })

  it('cleanup restores the registry config path as it was', async () => {
    const result = await runShoal(['cleanup', '--containerd-registry-config-path', containerd.registryConfigPath])
    assert.equal(result.code, 0, result.stderr)
    assert.deepEqual(await readTree(containerd.registryConfigPath), certsBefore)
  })
})

describe('configuration against a containerd that discards layers', { skip }, () => {
  let dir: string
  let containerd: ContainerdNode
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-ctrd-discard-'))
    containerd = await startContainerd(join(dir, 'node'), { discardUnpackedLayers: true })
  })
  after(async () => {
    await containerd?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('fails with the fix and writes nothing', async () => {
    const before = await readTree(containerd.registryConfigPath)
    const result = await runShoal(['configuration', '--containerd-sock', containerd.socket, '--containerd-registry-config-path', containerd.registryConfigPath,
      '--mirror-targets', 'http://127.0.0.1:5000'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /discard_unpacked_layers = true/)
    assert.match(result.stderr, /discard_unpacked_layers = false/)
    assert.deepEqual(await readTree(containerd.registryConfigPath), before)
  })
})
