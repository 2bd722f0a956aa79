import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { computeMetainfo } from '../../src/swarm/metainfo.js'
import { startLoopbackCluster, stats, stopCluster, type LoopbackNode, type TransferView } from '../support/cluster.js'
import { buildImage, type TestImage } from '../support/images.js'
import { freePort, freeUdpPort } from '../support/ports.js'
import { removeTestDir } from '../support/processes.js'
import { metricValue, testClusterKey } from '../support/shoal.js'
import { RoguePeer } from '../support/rogue-peer.js'
import { eventually } from '../support/eventually.js'
import { pullBlob, type Pulled } from '../support/faults.js'

const MiB = 1024 * 1024

/** The image's first layer through a node's registry API, hashed as it arrives. */
function fetchBlob(node: LoopbackNode, image: TestImage, onBytes?: (total: number) => void): Promise<Pulled> {
  return pullBlob(node, image.repository, image.layers[0]!.digest, onBytes ? { onBytes } : {})
}

/** The download transfer of a digest on a node, active or finished. */
async function downloadOf(node: LoopbackNode, digest: string): Promise<TransferView | undefined> {
  const view = await stats(node)
  return [...view.transfers, ...view.recent].find((transfer) => transfer.digest === digest && transfer.role === 'download')
}

function bigImage(repository: string, size = 200 * MiB): TestImage {
  return buildImage({ registry: 'registry.test', repository, tag: 'v1', layerSizes: [size] })
}

describe('swarm of shoal processes on loopback', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const first = bigImage('swarm/first')
  const second = bigImage('swarm/second')

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-swarm-'))
    const held = [first, second]
    nodes = await startLoopbackCluster({ dir, contents: [held, held, held, []], args: (index) => index < 3 ? ['--upload-limit', '40MiB'] : ['--verify-threads', '1'] })
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it('assembles a 200 MiB blob held by 3 nodes from at least 2 of them, byte for byte', async () => {
    const result = await fetchBlob(nodes[3]!, first)
    assert.equal(result.status, 200)
    assert.equal(result.bytes, first.layers[0]!.bytes.length)
    assert.equal(result.digest, first.layers[0]!.digest)
    const transfer = await downloadOf(nodes[3]!, first.layers[0]!.digest)
    assert.ok(transfer, 'the requester shows the download in /stats')
    const holders = new Set(nodes.slice(0, 3).map((node) => node.id))
    const contributing = transfer.peers.filter((peer) => holders.has(peer.peer) && peer.received > 0)
    assert.ok(contributing.length >= 2, `bytes from ${JSON.stringify(transfer.peers)}`)
    const received = transfer.peers.reduce((sum, peer) => sum + peer.received, 0)
    assert.ok(received >= first.layers[0]!.bytes.length, 'per-peer bytes add up to at least the blob')
    const metrics = await (await fetch(`${nodes[3]!.shoal.metricsUrl}/metrics`)).text()
    const verified = metricValue(metrics, 'shoal_swarm_pieces_total', { result: 'verified' })
    const onWorker = metricValue(metrics, 'shoal_swarm_pieces_checked_on_worker_total', { result: 'verified' })
    assert.ok(verified > 0 && onWorker >= 0.9 * verified, `whole pieces over HTTP are checked off the main thread: ${onWorker} of ${verified}`)
  })

  it('answers 404 at once for a digest no node holds: the lookup ends, no timeout is waited for', async () => {
    const response = await fetch(`${nodes[3]!.shoal.registryUrl}/v2/swarm/none/blobs/sha256:${'e'.repeat(64)}?ns=registry.test`)
    assert.equal(response.status, 404)
    const error = ((await response.json()) as { errors: { code: string; message: string }[] }).errors[0]
    assert.deepEqual(error && { code: error.code, message: error.message }, { code: 'BLOB_UNKNOWN', message: 'no node holds it (DHT lookup complete)' })
  })

  it('completes correctly when a holder is killed in the middle of the transfer', async () => {
    const layer = second.layers[0]!
    let killed: LoopbackNode | undefined
    const result = await fetchBlob(nodes[3]!, second, (bytes) => {
      if (killed || bytes < layer.bytes.length / 4) return
      killed = nodes[0]!
      killed.shoal.process.child.kill('SIGKILL')
    })
    assert.ok(killed, 'a holder was killed mid-transfer')
    assert.equal(result.status, 200)
    assert.equal(result.digest, layer.digest)
    const transfer = await downloadOf(nodes[3]!, layer.digest)
    assert.ok(transfer?.peers.some((peer) => peer.peer === killed!.id && peer.received > 0), 'the killed holder had contributed')
  })
})

for (const transport of ['blocks', 'http-pieces', 'http-pieces checked on a thread'] as const) {
  describe(`a holder that serves corrupted pieces (${transport})`, () => {
    const overHttp = transport !== 'blocks'
    const onThread = transport === 'http-pieces checked on a thread'
    let dir: string
    let nodes: LoopbackNode[]
    let rogue: RoguePeer
    const image = bigImage(`swarm/corrupt-${transport.replaceAll(' ', '-')}`, 64 * MiB)
    const base = { 'blocks': 50, 'http-pieces': 60, 'http-pieces checked on a thread': 230 }[transport]
    const rogueHost = `127.0.0.${base + 9}`

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'shoal-rogue-'))
      nodes = await startLoopbackCluster({ dir, base, contents: [[image], []], args: (index) => index === 0 ? ['--upload-limit', '8MiB'] : ['--verify-threads', onThread ? '1' : '0'] })
      const layer = image.layers[0]!
      const metainfo = await computeMetainfo(layer.digest, layer.bytes.length, (async function* () { yield layer.bytes })())
      // A node of the cluster (it has the key) whose disk returns bad bytes.
      const host = rogueHost
      rogue = new RoguePeer(host, await freePort(host), metainfo, layer.bytes, testClusterKey(), { httpPieces: overHttp })
      await rogue.start({ host: nodes[0]!.host, port: Number(nodes[0]!.p2p.split(':')[1]) }, await freeUdpPort([host]))
    })
    after(async () => {
      await rogue?.stop()
      await stopCluster(nodes ?? [])
      await removeTestDir(dir)
    })

    it('detects the bad pieces, bans the peer and still delivers the right bytes', async () => {
      await eventually('the rogue\'s holder record stored in the DHT', async () => {
        const views = await Promise.all(nodes.map((node) => stats(node)))
        return views.some((view) => (view.dht['recordSources'] as { source: string }[]).some((entry) => entry.source === rogueHost))
      })
      const result = await fetchBlob(nodes[1]!, image)
      assert.equal(result.status, 200)
      assert.equal(result.digest, image.layers[0]!.digest)
      const view = await stats(nodes[1]!)
      assert.ok(view.totals['piecesFailed']! > 0, 'corrupted pieces were caught')
      assert.ok(view.bans.some((ban) => ban.peer === rogue.node || ban.peer === rogue.label), `banned: ${JSON.stringify(view.bans)}`)
      assert.ok(!view.bans.some((ban) => ban.peer === nodes[0]!.id), 'the honest holder is not blamed')
      if (overHttp) assert.ok(rogue.pieceRequests > 0, 'the bad pieces came over HTTP')
      const metrics = await (await fetch(`${nodes[1]!.shoal.metricsUrl}/metrics`)).text()
      const failedOnThread = metricValue(metrics, 'shoal_swarm_pieces_checked_on_worker_total', { result: 'failed' })
      assert.equal(failedOnThread > 0, onThread, `bad pieces caught on a thread: ${failedOnThread}`)
    })
  })
}

describe('requesters pulling the same blob at once', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const image = bigImage('swarm/herd', 160 * MiB)

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-herd-'))
    nodes = await startLoopbackCluster({ dir, base: 70, contents: [[image], [], [], []], args: (index) => index === 0 ? ['--upload-limit', '24MiB'] : [] })
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it('trade pieces with each other, not only with the one holder, which keeps to its upload limit over the wire and HTTP together', async () => {
    const requesters = nodes.slice(1)
    // Everything the holder uploads: BitTorrent wire bytes and whole pieces or blobs over HTTP.
    const sentBefore = (await stats(nodes[0]!)).totals['sent']!
    const started = Date.now()
    const results = await Promise.all(requesters.map((node) => fetchBlob(node, image)))
    const seconds = (Date.now() - started) / 1000
    const sent = (await stats(nodes[0]!)).totals['sent']! - sentBefore
    assert.ok(sent >= image.layers[0]!.bytes.length, `premise: the holder uploaded the blob at least once (${sent} bytes)`)
    assert.ok(sent / seconds <= 24 * MiB * 1.2, `holder uploaded ${sent} bytes in ${seconds} s`)
    for (const result of results) assert.equal(result.digest, image.layers[0]!.digest)
    const others = new Set(requesters.map((node) => node.id))
    for (const node of requesters) {
      const transfer = await downloadOf(node, image.layers[0]!.digest)
      const fromRequesters = transfer?.peers.filter((peer) => others.has(peer.peer) && peer.peer !== node.id && peer.received > 0) ?? []
      assert.ok(fromRequesters.length > 0, `${node.id} got bytes only from ${JSON.stringify(transfer?.peers)}`)
    }
  })
})
