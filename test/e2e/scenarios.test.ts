import assert from 'node:assert/strict'
import { mkdtemp, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { readTree } from '../../src/containerd/config-tree.js'
import { rootTestsUnavailable } from '../support/environment.js'
import { buildImage, writeOciLayout, type TestImage } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'
import { runShoal } from '../support/shoal.js'
import { pushImage } from '../support/upstream.js'
import { E2eCluster, REGISTRY_PORT, type E2eNode } from './cluster.js'
import { removeStaleNamespaces } from './netns.js'
import { allWithin, bytesFromPeers, lineCount, upstreamBytesByClient } from './observe.js'
import { eventually } from '../support/eventually.js'

const skip = rootTestsUnavailable(['containerd', 'docker-registry', 'ip', 'tc'])
const MiB = 1024 * 1024
const RATE_MBIT = 200
const UPSTREAM_MBIT = 100
const NAMESPACE_PREFIX = `e2e${process.pid % 100000}-`

describe('shoal on a 4-node cluster with real containerd', { skip, timeout: 600_000 }, () => {
  let dir: string
  let cluster: E2eCluster
  const images: Record<string, TestImage> = {}
  const node = (index: number): E2eNode => cluster.nodes[index - 1]!
  const digests = (image: TestImage): Set<string> => new Set(image.blobs.map((blob) => blob.digest))
  /** Until `from`'s shoal can resolve the image's tag through its peers (what containerd asks first). */
  const resolvable = (from: E2eNode, image: TestImage): Promise<unknown> => eventually(`${image.name} resolvable from node ${from.index}`, async () =>
    (await cluster.fetch(`${from.registryUrl}/v2/${image.repository}/manifests/${image.tag}?ns=${cluster.upstreamHost}`, { method: 'HEAD' })).status === 200, 20_000, 200)

  before(async () => {
    await removeStaleNamespaces(/^e2e\d+-/)
    dir = await mkdtemp(join(tmpdir(), 'shoal-e2e-'))
    cluster = new E2eCluster({ dir, nodes: 4, prefix: NAMESPACE_PREFIX, rateMbit: RATE_MBIT })
    await cluster.start()
    const registry = cluster.upstreamHost
    images['big'] = buildImage({ registry, repository: 'e2e/big', tag: 'v1', layerSizes: [256 * MiB, 3 * MiB, 4096] })
    images['herd'] = buildImage({ registry, repository: 'e2e/herd', tag: 'v1', layerSizes: [256 * MiB, 4096] })
    images['kill'] = buildImage({ registry, repository: 'e2e/kill', tag: 'v1', layerSizes: [256 * MiB, 4096] })
    images['multi'] = buildImage({ registry, repository: 'e2e/multi', tag: 'v1', layerSizes: [2 * MiB, 4096], withIndex: true, otherPlatform: 'arm64' })
    images['restart'] = buildImage({ registry, repository: 'e2e/restart', tag: 'v1', layerSizes: [40 * MiB, 4096] })
    images['nobody'] = buildImage({ registry, repository: 'e2e/nobody', tag: 'v1', layerSizes: [1 * MiB] })
    images['foreign'] = buildImage({ registry, repository: 'e2e/foreign', tag: 'v1', layerSizes: [2 * MiB, 4096] })
    images['first'] = buildImage({ registry, repository: 'e2e/first', tag: 'v1', layerSizes: [64 * MiB, 2 * MiB, 4096] })
    images['frozen'] = buildImage({ registry, repository: 'e2e/frozen', tag: 'v1', layerSizes: [256 * MiB, 2 * MiB, 4096] })
    for (const image of Object.values(images)) if (image !== images['foreign']) await pushImage(cluster.upstreamUrl, image, cluster.fetch)
  })
  after(async () => {
    await cluster?.stop()
    await removeTestDir(dir)
  })

  it('1. a first pull goes upstream after fast 404s, then the node advertises the image', async () => {
    await cluster.pull(node(1), images['big']!.name)
    const metrics = await cluster.metrics(node(1))
    // Fast: ended by the lookup or the 0.5 s resolve timeout, not the 20.5 s answer deadline; the 5 s bucket leaves room for a slow machine.
    const fast = allWithin(metrics, 'shoal_http_request_duration_seconds', { code: '404' }, '5')
    assert.ok(fast.count >= 3, `containerd asked shoal first (${fast.count} 404s)`)
    assert.equal(fast.within, fast.count, 'every 404 was answered within 5 s')
    await eventually('node 1 to advertise the image', async () =>
      ((await cluster.stats(node(1)))['advertised'] as { digests: number }).digests >= images['big']!.blobs.length, 20_000)
    await resolvable(node(2), images['big']!)
  })

  it('2. with upstream stopped, a second node pulls the image entirely from peers', async () => {
    await cluster.stopUpstream()
    await cluster.pull(node(2), images['big']!.name)
    const fromPeers = bytesFromPeers(await cluster.stats(node(2)), digests(images['big']!))
    const total = [...fromPeers.values()].reduce((sum, bytes) => sum + bytes, 0)
    const size = images['big']!.blobs.reduce((sum, blob) => sum + blob.bytes.length, 0)
    assert.ok(total >= size - images['big']!.index?.bytes.length! || total >= size * 0.99, `received ${total} of ${size} bytes from peers`)
    assert.ok([...fromPeers.keys()].every((peer) => peer.startsWith('127.77.0.1:')), `sources: ${[...fromPeers.keys()].join(', ')}`)
  })

  it(`3. three nodes pull at once from the one holder with upstream stopped, and trade pieces (${RATE_MBIT} Mbit/s links)`, async () => {
    const herd = images['herd']!
    await cluster.startUpstream()
    await cluster.pull(node(1), herd.name)
    await cluster.stopUpstream()
    for (const index of [2, 3, 4]) await resolvable(node(index), herd)
    const logLines = await lineCount(cluster.upstreamLog())
    const times = await Promise.all([2, 3, 4].map((index) => cluster.pull(node(index), herd.name)))
    const upstream = await upstreamBytesByClient(cluster.upstreamLog(), logLines)
    const rows = []
    let fromRequesters = 0
    for (const [i, index] of [2, 3, 4].entries()) {
      const sources = bytesFromPeers(await cluster.stats(node(index)), digests(herd))
      for (const [peer, bytes] of sources) {
        const from = Number(peer.split(':')[0]!.split('.')[3])
        if (from !== 1 && from !== index && peer.endsWith(`:${REGISTRY_PORT}`)) fromRequesters += bytes
      }
      rows.push({ node: index, seconds: times[i]! / 1000, upstream: upstream.get(node(index).address) ?? 0, ...Object.fromEntries(sources) })
    }
    process.stdout.write(`# scenario 3, ${RATE_MBIT} Mbit/s per node: ${JSON.stringify(rows)}\n`)
    assert.ok(fromRequesters > 0, `some node received bytes from another requester: ${JSON.stringify(rows)}`)
  })

  it('4. a holder killed in the middle of a pull does not fail the pull', async () => {
    const image = images['kill']!
    await cluster.startUpstream()
    await Promise.all([cluster.pull(node(1), image.name), cluster.pull(node(2), image.name)])
    await cluster.stopUpstream()
    await resolvable(node(3), image)
    const layer = image.layers[0]!.digest
    const pulling = cluster.pull(node(3), image.name)
    await eventually('node 3 to be a quarter into the layer', async () => {
      const transfers = (await cluster.stats(node(3)))['transfers'] as { digest: string; received: number }[]
      return (transfers.find((transfer) => transfer.digest === layer)?.received ?? 0) > 64 * MiB
    }, 60_000, 100)
    node(1).shoal!.process.child.kill('SIGKILL')
    await pulling
    const sources = bytesFromPeers(await cluster.stats(node(3)), new Set([layer]))
    assert.ok((sources.get(`127.77.0.1:${REGISTRY_PORT}`) ?? 0) > 0, `the killed holder had contributed: ${JSON.stringify([...sources])}`)
    await cluster.startShoal(node(1))
    await cluster.waitReady(node(1))
  })

  it('5. pulls by digest, a multi-arch index, and tags resolved through peers, all with upstream stopped', async () => {
    const big = images['big']!
    await cluster.pull(node(3), `${cluster.upstreamHost}/${big.repository}@${big.target.digest}`)
    const multi = images['multi']!
    await cluster.startUpstream()
    await cluster.pull(node(1), multi.name)
    await cluster.stopUpstream()
    await resolvable(node(4), multi)
    await cluster.pull(node(4), multi.name)
    const images4 = await node(4).containerd.cri.listImages()
    assert.ok(images4.some((image) => image.repo_digests.includes(`${cluster.upstreamHost}/${multi.repository}@${multi.index!.digest}`)))
    const platforms = (JSON.parse(multi.index!.bytes.toString()) as { manifests: { platform: { architecture: string } }[] }).manifests.map((entry) => entry.platform.architecture)
    assert.deepEqual(platforms, ['amd64', 'arm64'], 'premise: the index lists two platforms')
    const fromPeers = bytesFromPeers(await cluster.stats(node(4)), new Set([multi.manifest.digest, multi.layers[0]!.digest]))
    assert.ok([...fromPeers.values()].reduce((sum, bytes) => sum + bytes, 0) > 0, 'node 4 took the amd64 content from peers')
  })

  it('6. an image nobody has fails fast with upstream stopped, and comes from upstream once it is back', async () => {
    const started = Date.now()
    await assert.rejects(cluster.pull(node(4), images['nobody']!.name, 60_000), /connection refused|failed to (resolve|pull|do request)/i)
    assert.ok(Date.now() - started < 20_000, `failed after ${Date.now() - started} ms`)
    await cluster.startUpstream()
    await cluster.pull(node(4), images['nobody']!.name)
  })

  it('7. a restarted shoal on a holder advertises and serves again within seconds', async () => {
    const image = images['restart']!
    await cluster.pull(node(1), image.name)
    await cluster.stopUpstream()
    const restarted = Date.now()
    await node(1).shoal!.stop()
    await cluster.startShoal(node(1))
    await cluster.waitReady(node(1))
    await eventually('node 1 to advertise again', async () =>
      ((await cluster.stats(node(1)))['advertised'] as { digests: number }).digests >= image.blobs.length, 15_000)
    await resolvable(node(3), image)
    await cluster.pull(node(3), image.name)
    const seconds = (Date.now() - restarted) / 1000
    process.stdout.write(`# scenario 7: restart to a peer's completed pull of a 40 MiB image: ${seconds} s\n`)
    const sources = bytesFromPeers(await cluster.stats(node(3)), digests(image))
    assert.ok([...sources].some(([peer, bytes]) => peer.startsWith('127.77.0.1:') && bytes > 0), `the restarted node served: ${JSON.stringify([...sources])}`)
  })

  it('8. a holder frozen mid-pull and one killed earlier (records still in the DHT): the pull succeeds from the others, upstream stopped', async () => {
    const image = images['frozen']!
    await cluster.startUpstream()
    await Promise.all([1, 2, 3].map((index) => cluster.pull(node(index), image.name)))
    await cluster.stopUpstream()
    for (const index of [1, 2, 3]) {
      await eventually(`node ${index} to advertise the image`, async () =>
        ((await cluster.stats(node(index)))['advertised'] as { digests: number }).digests >= image.blobs.length, 20_000)
    }
    node(3).shoal!.process.child.kill('SIGKILL')
    const records = await Promise.all([1, 2, 4].map(async (index) => ((await cluster.stats(node(index)))['dht'] as { recordSources: { source: string; records: number }[] }).recordSources))
    assert.ok(records.flat().some((entry) => entry.source === '127.77.0.3' && entry.records > 0), `premise: the killed holder's records are still in the DHT: ${JSON.stringify(records)}`)
    await resolvable(node(4), image)
    const layer = image.layers[0]!.digest
    const pulling = cluster.pull(node(4), image.name)
    const holder = node(1).shoal!.process.child
    try {
      await eventually('node 4 to be a quarter into the layer', async () => {
        const transfers = (await cluster.stats(node(4)))['transfers'] as { digest: string; received: number }[]
        return (transfers.find((transfer) => transfer.digest === layer)?.received ?? 0) > 64 * MiB
      }, 60_000, 100)
      holder.kill('SIGSTOP')
      const seconds = (await pulling) / 1000
      process.stdout.write(`# scenario 8: pull with one holder frozen and one dead: ${seconds} s\n`)
    } finally {
      holder.kill('SIGCONT')
    }
    const images4 = await node(4).containerd.cri.listImages()
    assert.ok(images4.some((listed) => listed.repo_tags.includes(image.name)))
    await cluster.startShoal(node(3))
    await cluster.waitReady(node(3))
  })

  it('9. a namespace on the same bridge without the cluster key cannot serve a byte to a node\'s containerd, nor take one', async () => {
    const foreign = images['foreign']!
    const layout = join(dir, 'stranger-layout')
    await writeOciLayout(layout, [foreign, images['big']!])
    await cluster.stopUpstream()
    const stranger = await cluster.startStranger(60, layout)
    await eventually('the nodes to drop the stranger\'s DHT packets', async () =>
      ((await cluster.stats(node(1)))['dht'] as { unauthenticatedPackets: number }).unauthenticatedPackets > 0, 20_000, 200)
    await assert.rejects(cluster.pull(node(4), foreign.name, 30_000), /failed|not found|refused/i)
    const asked = await cluster.fetch(`${stranger.registryUrl}/v2/${images['herd']!.repository}/blobs/${images['herd']!.layers[0]!.digest}?ns=${cluster.upstreamHost}`, { method: 'HEAD' })
    assert.equal(asked.status, 404, 'the stranger cannot take a blob from the nodes either')
    const strangerStats = await (await cluster.fetch(`${stranger.metricsUrl}/stats`)).json() as { totals: { sent: number }; served: unknown[]; dht: { nodes: number } }
    assert.equal(strangerStats.totals.sent, 0)
    assert.deepEqual(strangerStats.served, [])
    for (const index of [1, 2, 3, 4]) {
      const view = await cluster.stats(node(index)) as { recent: { peers: { peer: string }[] }[]; transfers: { peers: { peer: string }[] }[] }
      const peers = [...view.recent, ...view.transfers].flatMap((transfer) => transfer.peers.map((peer) => peer.peer))
      assert.ok(!peers.some((peer) => peer.startsWith('127.77.0.60:')), `node ${index} traded with the stranger`)
    }
    await stranger.shoal.stop()
  })

  it('10. configuration and cleanup leave containerd\'s registry config path as it was', async () => {
    const target = node(4)
    const path = target.containerd.registryConfigPath
    const restored = await runShoal(['cleanup', '--containerd-registry-config-path', path])
    assert.equal(restored.code, 0, restored.stderr)
    await mkdir(join(path, 'ghcr.io'), { recursive: true })
    await writeFile(join(path, 'ghcr.io', 'hosts.toml'), 'server = "https://ghcr.io"\n')
    await mkdir(join(path, cluster.upstreamHost), { recursive: true })
    await writeFile(join(path, cluster.upstreamHost, 'hosts.toml'), `server = "${cluster.upstreamUrl}"\n[host."http://127.77.0.99:5000"]\ncapabilities = ["pull"]\n`)
    const before = await readTree(path)
    const configured = await runShoal(['configuration', '--containerd-sock', target.containerd.socket, '--containerd-config-file', target.containerd.configFile,
      '--containerd-registry-config-path', path, '--mirrored-registries', cluster.upstreamUrl, '--mirror-targets', target.registryUrl, '--prepend-existing'])
    assert.equal(configured.code, 0, configured.stderr)
    assert.notDeepEqual(await readTree(path, ['_backup']), before)
    await cluster.pull(target, images['restart']!.name)
    const cleaned = await runShoal(['cleanup', '--containerd-registry-config-path', path])
    assert.equal(cleaned.code, 0, cleaned.stderr)
    assert.deepEqual(await readTree(path), before)
  })

  it(`11. with --upstream-fetch, three nodes pulling a new image at once through CRI take it from upstream about once (upstream link ${UPSTREAM_MBIT} Mbit/s)`, async () => {
    const image = images['first']!
    await cluster.startUpstream().catch(() => {})
    for (const index of [1, 2, 3, 4]) {
      await node(index).shoal!.stop()
      await cluster.startShoal(node(index), ['--upstream-fetch'])
    }
    for (const index of [1, 2, 3, 4]) {
      await cluster.waitReady(node(index))
      await eventually(`node ${index} to know the other nodes`, async () =>
        ((await cluster.stats(node(index)))['firstPulls'] as { members: string[] }).members.length === 3, 30_000, 200)
    }
    await cluster.shapeUpstream(UPSTREAM_MBIT)
    try {
      const logLines = await lineCount(cluster.upstreamLog())
      const times = await Promise.all([1, 2, 3].map((index) => cluster.pull(node(index), image.name)))
      const upstream = await upstreamBytesByClient(cluster.upstreamLog(), logLines)
      const sent = [...upstream.values()].reduce((sum, bytes) => sum + bytes, 0)
      const size = image.blobs.reduce((sum, blob) => sum + blob.bytes.length, 0)
      process.stdout.write(`# scenario 11: ${JSON.stringify({ seconds: times.map((ms) => ms / 1000), upstreamBytes: sent, imageBytes: size, byClient: Object.fromEntries(upstream) })}\n`)
      assert.ok(sent <= 1.15 * size, `upstream sent ${sent} bytes for an image of ${size} (${(sent / size).toFixed(2)} copies)`)
      for (const index of [1, 2, 3]) {
        const listed = await node(index).containerd.cri.listImages()
        assert.ok(listed.some((entry) => entry.repo_tags.includes(image.name)), `node ${index} has the image`)
      }
    } finally {
      await cluster.shapeUpstream(undefined)
    }
  })
})
