import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { parse } from 'yaml'
import { OCI_MANIFEST } from '../../src/oci/mediatype.js'
import { startContainerd, type ContainerdNode } from '../support/containerd.js'
import { rootTestsUnavailable } from '../support/environment.js'
import { buildImage, type TestImage } from '../support/images.js'
import { freePort } from '../support/ports.js'
import { removeTestDir } from '../support/processes.js'
import { metricValue, TEST_CLUSTER_KEY } from '../support/shoal.js'
import { pushImage, startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream.js'
import { startDaemon, type ImageDaemon } from './daemon.js'
import { buildTestImage, hostPath, podman, podmanRunOnce, securityContextFlags } from './podman.js'

const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const skip = rootTestsUnavailable(['podman', 'containerd', 'docker-registry'])
/** Where the chart mounts the cluster key Secret. */
const KEY_DIR = '/etc/shoal/cluster-key'

interface ChartValues {
  securityContext: Record<string, unknown>
  shoal: { dataDir: string; containerdNamespace: string }
}

describe('the image as the chart runs it, beside a real containerd', { skip }, () => {
  let dir: string
  let values: ChartValues
  let upstream: UpstreamRegistry
  let containerd: ContainerdNode
  let image: TestImage
  let daemon: ImageDaemon | undefined
  let registryPort: number

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-image-chart-'))
    await buildTestImage(REPO, dir)
    values = parse(await readFile(join(REPO, 'chart', 'values.yaml'), 'utf8')) as ChartValues
    upstream = await startUpstreamRegistry(join(dir, 'upstream'), { host: '127.0.0.1', port: await freePort() })
    image = buildImage({ registry: upstream.host, repository: 'test/app', tag: 'v1', layerSizes: [3 * 1024 * 1024, 1024] })
    await pushImage(upstream.url, image)
    containerd = await startContainerd(join(dir, 'node'))
    registryPort = await freePort()
  })

  after(async () => {
    await daemon?.stop()
    await containerd?.stop()
    await upstream?.stop()
    await removeTestDir(dir)
  })

  /** The chart's securityContext, and containerd's socket and config directory as hostPath volumes. */
  const chartFlags = () => [...securityContextFlags(values.securityContext), '--tmpfs', '/tmp',
    ...hostPath(containerd.socket, false), ...hostPath(dirname(containerd.configFile), true)]
  const containerdArgs = () => ['--containerd-sock', containerd.socket, '--containerd-config-file', containerd.configFile,
    '--containerd-registry-config-path', containerd.registryConfigPath]

  it('configuration, as the init container, checks containerd and writes hosts.toml that mirror through the node', async () => {
    const result = await podmanRunOnce(['configuration', ...containerdArgs(), '--mirrored-registries', upstream.url, '--mirror-targets', `http://127.0.0.1:${registryPort}`],
      ['--network', 'host', ...chartFlags(), ...hostPath(containerd.registryConfigPath, false)])
    assert.equal(result.code, 0, result.stderr + result.stdout)
    const hosts = await readFile(join(containerd.registryConfigPath, upstream.host, 'hosts.toml'), 'utf8')
    assert.ok(hosts.includes(`server = "${upstream.url}"`) && hosts.includes(`[host."http://127.0.0.1:${registryPort}"]`), hosts)
  })

  it('registry serves what containerd pulled: blobs whole and ranged, manifests, probes, metrics, /stats and status', async () => {
    const data = join(dir, 'data')
    await mkdir(join(dir, 'key'))
    await mkdir(data)
    await writeFile(join(dir, 'key', 'cluster.key'), `${TEST_CLUSTER_KEY}\n`, { mode: 0o400 })
    daemon = await startDaemon(dir, 'chart', {
      registryPort,
      flags: chartFlags(),
      mounts: [...hostPath(containerd.contentPath, true), ...hostPath(containerd.registryConfigPath, true),
        '-v', `${data}:${values.shoal.dataDir}`, '-v', `${join(dir, 'key')}:${KEY_DIR}:ro`],
      args: [...containerdArgs(), '--containerd-content-path', containerd.contentPath, '--containerd-namespace', values.shoal.containerdNamespace,
        '--data-dir', values.shoal.dataDir, '--cluster-key-file', `${KEY_DIR}/cluster.key`],
    })
    const inside = await podman(['exec', daemon.container, 'sh', '-c', 'id -u; grep CapEff /proc/1/status; touch /probe 2>/dev/null || echo read-only root'])
    assert.match(inside.stdout, /^0\nCapEff:\s+0+\nread-only root\n$/, 'the premise: root, no capabilities, read-only root filesystem, as the chart says')
    await containerd.cri.pullImage(image.name, { timeoutMs: 120_000 })
    const base = `${daemon.registryUrl}/v2/${image.repository}`
    const metricsBefore = await (await fetch(`${daemon.metricsUrl}/metrics`)).text()
    assert.ok(metricValue(metricsBefore, 'shoal_mirror_requests_total', { registry: upstream.host, cache: 'miss' }) >= 1, 'containerd asked the node first')

    const layer = image.layers[0]!
    const whole = await fetch(`${base}/blobs/${layer.digest}?ns=${upstream.host}`)
    assert.equal(whole.status, 200)
    assert.equal(whole.headers.get('docker-content-digest'), layer.digest)
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(layer.bytes), 'the layer, byte for byte, from containerd\'s content store')
    const ranged = await fetch(`${base}/blobs/${layer.digest}?ns=${upstream.host}`, { headers: { range: 'bytes=1000000-' } })
    assert.equal(ranged.status, 206)
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(layer.bytes.subarray(1_000_000)))
    const manifest = await fetch(`${base}/manifests/${image.tag}?ns=${upstream.host}`)
    assert.equal(manifest.status, 200)
    assert.equal(manifest.headers.get('content-type'), OCI_MANIFEST)
    assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest)
    const absent = await fetch(`${base}/blobs/sha256:${'0'.repeat(64)}?ns=${upstream.host}`)
    assert.equal(absent.status, 404)
    assert.equal((await fetch(`${daemon.registryUrl}/v2/`)).headers.get('docker-distribution-api-version'), 'registry/2.0')
    assert.equal((await fetch(`${daemon.registryUrl}/livez`)).status, 200)
    assert.equal((await fetch(`${daemon.registryUrl}/readyz`)).status, 200)
    const debug = await fetch(`${daemon.metricsUrl}/debug`)
    assert.equal(debug.status, 200)
    assert.match(await debug.text(), /<html/i)

    const metrics = await (await fetch(`${daemon.metricsUrl}/metrics`)).text()
    assert.ok(metricValue(metrics, 'shoal_mirror_requests_total', { registry: upstream.host, cache: 'hit' }) >= 2)
    const stats = await (await fetch(`${daemon.metricsUrl}/stats`)).json() as { node: { version: string }; trust: { mode: string }; content: { available: boolean } }
    const version = (JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string }).version
    assert.deepEqual([stats.node.version, stats.trust.mode, stats.content.available], [version, 'cluster-key', true])
    const status = await podman(['exec', daemon.container, 'shoal', 'status', '--addr', new URL(daemon.metricsUrl).host])
    assert.equal(status.code, 0, status.stderr)
    assert.match(status.stdout, new RegExp(`shoal ${version.replaceAll('.', '\\.')} .* registry 127\\.0\\.0\\.1:${registryPort}`))
  })

  it('stops on SIGTERM with exit code 0', async () => {
    assert.ok(daemon, 'the daemon of the previous test runs')
    const code = await daemon.stop()
    daemon = undefined
    assert.equal(code, 0)
  })
})
