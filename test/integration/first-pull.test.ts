import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { rankFetchers } from '../../src/upstream/fetcher-choice.js'
import { startLoopbackCluster, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { eventually } from '../support/eventually.js'
import { freeze, kill, MiB, pullBlob, thaw } from '../support/faults.js'
import { buildImage, patternBytes, type TestBlob } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'
import { metricValue, runShoal } from '../support/shoal.js'
import type { FirstPullStats } from '../../src/status/stats.js'
import { TestUpstream } from '../support/upstream-server.js'
import { sha256Digest } from '../../src/oci/digest.js'
import { SOURCE_HEADER } from '../../src/protocol/peer-api.js'

const STALL_S = 3
const LINGER_S = 10
const UPSTREAM_HOST = '127.0.0.170'

/** A blob upstream has and no node holds, with its own misbehaviour. */
function freshBlob(upstream: TestUpstream, seed: number, size = 8 * MiB): TestBlob {
  const bytes = patternBytes(size, 11 + seed, seed)
  const digest = sha256Digest(bytes)
  upstream.add(digest, bytes)
  return { digest, bytes, mediaType: 'application/octet-stream' } as TestBlob
}

/**
 * Four nodes on loopback that hold nothing, a registry upstream of them (named by each node's
 * hosts.toml): content nobody holds is pulled from upstream once for the cluster and relayed.
 */
describe('a first pull: upstream sends each blob once, whatever fails', { timeout: 300_000 }, () => {
  let dir: string
  let nodes: LoopbackNode[]
  const upstream = new TestUpstream()
  const image = buildImage({ registry: 'registry.test', repository: 'first/app', tag: 'v1', layerSizes: [24 * MiB, 4096] })
  const fetcherOf = (digest: string): LoopbackNode => nodes.find((node) => node.id === rankFetchers(digest, nodes.map((each) => each.id))[0])!
  const othersThan = (node: LoopbackNode): LoopbackNode[] => nodes.filter((other) => other !== node)
  const pull = (node: LoopbackNode, blob: TestBlob, range?: string) => pullBlob(node, 'first/app', blob.digest, range ? { range } : {})

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-first-pull-'))
    const address = await upstream.start(UPSTREAM_HOST)
    for (const item of image.blobs) upstream.add(item.digest, item.bytes, item.mediaType)
    await mkdir(join(dir, 'certs.d', 'registry.test'), { recursive: true })
    await writeFile(join(dir, 'certs.d', 'registry.test', 'hosts.toml'), `server = "http://${address}"\n`)
    nodes = await startLoopbackCluster({ dir, base: 150, contents: [[], [], [], []],
      args: () => ['--upstream-fetch', '--containerd-registry-config-path', join(dir, 'certs.d'), '--stall-timeout', `${STALL_S}s`, '--download-linger', `${LINGER_S}s`] })
    for (const node of nodes) {
      await eventually(`node ${node.index + 1} to know the other nodes`, async () =>
        ((await (await fetch(`${node.shoal.metricsUrl}/stats`)).json()) as { firstPulls: { members: string[] } }).firstPulls.members.length === nodes.length - 1, 30_000, 200)
    }
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await upstream.stop()
    await removeTestDir(dir)
  })

  it('three nodes pulling at once what nobody holds: upstream sends each blob and the manifest once, every node gets the exact bytes', async () => {
    const layer = image.layers[0]!
    upstream.behave(layer.digest, { bytesPerSecond: 16 * MiB })
    const pulled = await Promise.all(nodes.slice(0, 3).map((node) => pull(node, layer)))
    for (const result of pulled) assert.deepEqual([result.status, result.digest], [200, layer.digest])
    assert.equal(upstream.asked(layer.digest).count, 1, 'upstream asked once for the layer')
    assert.equal(upstream.asked(layer.digest).sent, layer.bytes.length)
    const fetcher = fetcherOf(layer.digest)
    for (const node of nodes) {
      const view = ((await (await fetch(`${node.shoal.metricsUrl}/stats`)).json()) as { firstPulls: FirstPullStats }).firstPulls.pulls.find((row) => row.digest === layer.digest)
      if (node === fetcher) assert.deepEqual([view?.role, view?.sources], ['fetcher', [{ name: 'upstream registry.test', kind: 'upstream', bytes: layer.bytes.length }]])
      else if (nodes.indexOf(node) < 3) assert.deepEqual([view?.role, view?.sources.map((source) => source.kind)], ['relay', ['peer']], `node ${node.index + 1} relayed`)
    }
    const metrics = await (await fetch(`${fetcher.shoal.metricsUrl}/metrics`)).text()
    assert.equal(metricValue(metrics, 'shoal_first_pull_bytes_total', { registry: 'registry.test', source: 'upstream' }), layer.bytes.length)
    const status = await runShoal(['status', '--addr', fetcher.shoal.metricsUrl])
    assert.match(status.stdout, new RegExp(`FIRST PULLS \\(relay tree over 4 nodes\\)\\n.*\\n  ${layer.digest.slice(7, 19)}\\s+fetcher`))
    const manifests = await Promise.all(nodes.slice(0, 3).map((node) => fetch(`${node.shoal.registryUrl}/v2/first/app/manifests/${image.manifest.digest}?ns=registry.test`)))
    for (const response of manifests) assert.ok(Buffer.from(await response.arrayBuffer()).equals(image.manifest.bytes))
    assert.equal(upstream.asked(image.manifest.digest).count, 1, 'upstream asked once for the manifest')
  })

  it('then an ordinary holder: a node asking once the pull is done gets it from the fetcher\'s kept copy (a DHT record), until the linger ends', async () => {
    const blob = freshBlob(upstream, 3, 2 * MiB)
    const fetcher = fetcherOf(blob.digest)
    assert.equal((await pull(fetcher, blob)).digest, blob.digest)
    // The pull ends once the copy is verified, which is when the fetcher starts announcing it; a node asking
    // before the record is out finds no holder and takes the first-pull path instead (this test is not about that).
    await eventually('the kept copy announced', async () =>
      ((await (await fetch(`${fetcher.shoal.metricsUrl}/stats`)).json()) as { dht: { announcesPending: number } }).dht.announcesPending === 0, 10_000, 50)
    const other = othersThan(fetcher)[0]!
    const answer = await eventually('the kept copy found as a holder', async () => {
      const response = await fetch(`${other.shoal.registryUrl}/v2/first/app/blobs/${blob.digest}?ns=registry.test`)
      const bytes = Buffer.from(await response.arrayBuffer())
      return response.headers.get(SOURCE_HEADER) === 'peer' && bytes.equals(blob.bytes)
    }, 10_000, 200)
    assert.ok(answer)
    assert.equal(upstream.asked(blob.digest).count, 1, 'upstream asked once')
    await eventually('the kept copy removed after the linger', async () =>
      ((await (await fetch(`${fetcher.shoal.metricsUrl}/stats`)).json()) as { firstPulls: FirstPullStats }).firstPulls.pulls.every((row) => row.digest !== blob.digest), (LINGER_S + 20) * 1000, 500)
    assert.deepEqual(await readdir(join(dir, `node-${fetcher.index + 1}`, 'data', 'first-pulls')).then((names) => names.filter((name) => blob.digest.endsWith(name))), [])
  })

  it('a node that joins when the pull is half done reads from the start and follows the tail; a range past what arrived waits for it', async () => {
    const blob = freshBlob(upstream, 1)
    upstream.behave(blob.digest, { bytesPerSecond: 4 * MiB })
    const first = pull(nodes[0]!, blob)
    await eventually('half the blob sent', () => upstream.asked(blob.digest).sent >= blob.bytes.length / 2, 20_000, 20)
    const [late, tail] = await Promise.all([pull(nodes[1]!, blob), pull(nodes[2]!, blob, `bytes=${blob.bytes.length - 1000}-`)])
    assert.equal((await first).digest, blob.digest)
    assert.equal(late.digest, blob.digest)
    assert.deepEqual([tail.status, tail.digest], [206, sha256Digest(blob.bytes.subarray(blob.bytes.length - 1000))])
    assert.equal(upstream.asked(blob.digest).count, 1)
  })

  it('upstream cutting the body: the fetcher continues from the byte it reached, nobody sees the cut', async () => {
    const blob = freshBlob(upstream, 2)
    upstream.behave(blob.digest, { cutAt: 3 * MiB })
    const pulled = await Promise.all([pull(nodes[0]!, blob), pull(nodes[1]!, blob)])
    for (const result of pulled) assert.equal(result.digest, blob.digest)
    const [whole, resumed, ...more] = upstream.asked(blob.digest).ranges
    const from = Number(/^bytes=(\d+)-$/.exec(resumed ?? '')?.[1])
    // Bytes in flight when the connection was cut are lost: the fetcher resumes from the last byte it received.
    assert.ok(whole === undefined && from > 0 && from <= 3 * MiB && more.length === 0, `upstream asked for ${JSON.stringify(upstream.asked(blob.digest).ranges)}`)
  })

  it('upstream refusing (429, 500, 401 without a realm, a realm that refuses) or sending a wrong byte: an answer containerd goes upstream on, at once, nothing kept', async () => {
    const realm = `http://${UPSTREAM_HOST}:1/token`
    const cases = [{ status: 429 }, { status: 500 }, { status: 401 }, { status: 401, challenge: `Bearer realm="${realm}",service="registry.test"` }]
    for (const [index, behaviour] of cases.entries()) {
      const blob = freshBlob(upstream, 10 + index, MiB)
      upstream.behave(blob.digest, behaviour)
      const started = performance.now()
      const result = await pull(nodes[index % 2]!, blob)
      assert.equal(result.status, 404, `status for upstream ${JSON.stringify(behaviour)}`)
      assert.ok(performance.now() - started < STALL_S * 1000, `answered in ${Math.round(performance.now() - started)} ms for ${JSON.stringify(behaviour)}`)
    }
    const corrupt = freshBlob(upstream, 20, 2 * MiB)
    upstream.behave(corrupt.digest, { corruptAt: MiB })
    const results = await Promise.all([pull(nodes[2]!, corrupt).catch(() => undefined), pull(nodes[3]!, corrupt).catch(() => undefined)])
    for (const result of results) assert.ok(result === undefined || result.digest !== corrupt.digest || result.status !== 200, 'a wrong blob never ends cleanly')
    for (const result of results) assert.ok(result === undefined || result.bytes < corrupt.bytes.length, 'the last byte of a wrong blob is held back')
  })

  it('the fetcher frozen, then killed, mid-blob: every other node still gets the exact bytes (from the next source up the tree, or upstream)', async () => {
    for (const [seed, fault] of [[30, 'freeze'], [31, 'kill']] as const) {
      const blob = freshBlob(upstream, seed)
      const fetcher = fetcherOf(blob.digest)
      const [first, second] = othersThan(fetcher)
      upstream.behave(blob.digest, { bytesPerSecond: 4 * MiB })
      const pulls = Promise.all([pull(first!, blob), pull(second!, blob)])
      await eventually('a third of the blob sent', () => upstream.asked(blob.digest).sent >= blob.bytes.length / 3, 20_000, 20)
      if (fault === 'freeze') freeze(fetcher)
      else kill(fetcher)
      try {
        for (const result of await pulls) assert.equal(result.digest, blob.digest, `byte-exact after the fetcher was ${fault === 'freeze' ? 'frozen' : 'killed'}`)
      } finally {
        if (fault === 'freeze') thaw(fetcher)
      }
    }
  })
})
