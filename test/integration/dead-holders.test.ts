import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { MAX_ANSWER_MS } from '../../src/mirror/holder-health.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { StaticBootstrap } from '../../src/routing/bootstrap.js'
import { DhtRouter } from '../../src/routing/dht.js'
import { startLoopbackCluster, stats, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { eventually } from '../support/eventually.js'
import { alive, freeze, MiB, pullBlob, thaw } from '../support/faults.js'
import { buildImage } from '../support/images.js'
import { freePort, freeUdpPort } from '../support/ports.js'
import { removeTestDir } from '../support/processes.js'
import { silentLogger } from '../support/registry-app.js'
import { testClusterKey } from '../support/shoal.js'

/**
 * Small blobs (under --swarm-min-size) come whole from one holder over HTTP. The bound per pull,
 * against a healthy pull measured first: holders are raced, the next one asked after at most
 * MAX_ANSWER_MS without an answer, and a holder that failed is skipped by later requests; so a
 * pull may spend at most two answer timeouts (HEAD, then GET) on a dead or frozen holder, plus
 * 1 s of slack. Each case pulls on a requester of its own; the frozen holder's requester first
 * learns that holder delivered, so it asks the frozen one first (the worst case).
 */
describe('dead and frozen holders of small blobs', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const image = buildImage({ registry: 'registry.test', repository: 'faults/small', tag: 'v1', layerSizes: [4 * MiB] })
  const layer = image.layers[0]!
  let healthyMs = 0
  const bound = (): number => healthyMs + 2 * MAX_ANSWER_MS + 1_000

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-dead-'))
    nodes = await startLoopbackCluster({ dir, base: 120, contents: [[image], [image], [], [], []] })
    const pulled = await pullBlob(nodes[2]!, image.repository, layer.digest)
    assert.equal(pulled.digest, layer.digest)
    healthyMs = pulled.ms
  })
  after(async () => {
    for (const node of nodes ?? []) if (alive(node)) thaw(node)
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it('one of two holders frozen: six pulls in a row all answer 200, byte-exact, within the bound', async () => {
    const [other, frozen, , requester] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode]
    // The requester first gets the blob from the holder about to freeze, so it asks that one first later.
    freeze(other)
    try {
      assert.equal((await pullBlob(requester, image.repository, layer.digest)).status, 200)
    } finally {
      thaw(other)
    }
    freeze(frozen)
    try {
      for (let pull = 0; pull < 6; pull++) {
        const pulled = await pullBlob(requester, image.repository, layer.digest)
        assert.equal(pulled.status, 200, `pull ${pull + 1}: ${pulled.error}`)
        assert.equal(pulled.digest, layer.digest)
        assert.ok(pulled.ms < bound(), `pull ${pull + 1} took ${Math.round(pulled.ms)} ms; bound ${bound()} ms (healthy ${Math.round(healthyMs)} ms)`)
      }
      const registryAddress = frozen.shoal.registryUrl.slice('http://'.length)
      const faults = (await stats(requester)).faults.recent
      assert.ok(faults.some((fault) => fault.kind === 'peer-unanswered' && fault.detail.startsWith(`${registryAddress} `)),
        `premise: the frozen holder was asked and gave up on: ${JSON.stringify(faults)}`)
    } finally {
      thaw(frozen)
    }
  })

  it('30 dead addresses announced as holders: six pulls all answer 200 within the bound', async () => {
    const [first, , , , requester] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode]
    const bootstrap = new StaticBootstrap([{ host: first.host, port: Number(first.p2p.split(':')[1]) }])
    const ghosts: DhtRouter[] = []
    try {
      for (let index = 0; index < 30; index++) {
        const host = `127.0.2.${index + 1}`
        const deadPort = await freePort(host)
        const ghost = new DhtRouter({ bootstrap, logger: silentLogger, metrics: createMetricsRegistry().metrics },
          // No withdrawal when it stops: as if it had been killed.
          { listen: { host, port: await freeUdpPort([host]) }, announcePort: () => deadPort, withdrawTimeoutMs: 0, clusterKey: testClusterKey() })
        await ghost.start()
        ghost.advertise([layer.digest])
        ghosts.push(ghost)
      }
      await eventually('the dead addresses announced', () => ghosts.every((ghost) => ghost.stats().announcesSent > 0), 10_000)
    } finally {
      // Gone, as a node scaled away is: its records stay in the DHT.
      await Promise.all(ghosts.map((ghost) => ghost.stop()))
    }
    for (let pull = 0; pull < 6; pull++) {
      const pulled = await pullBlob(requester, image.repository, layer.digest)
      assert.equal(pulled.status, 200, `pull ${pull + 1}: ${pulled.error}`)
      assert.equal(pulled.digest, layer.digest)
      assert.ok(pulled.ms < bound(), `pull ${pull + 1} took ${Math.round(pulled.ms)} ms; bound ${bound()} ms (healthy ${Math.round(healthyMs)} ms)`)
    }
    // The premise: the DHT still names the dead holders (which of them a pull meets first is chance).
    const probeHost = '127.0.2.99'
    const probe = new DhtRouter({ bootstrap, logger: silentLogger, metrics: createMetricsRegistry().metrics }, { listen: { host: probeHost, port: await freeUdpPort([probeHost]) }, announcePort: () => 1, clusterKey: testClusterKey() })
    await probe.start()
    try {
      const named: string[] = []
      for await (const holder of probe.lookup(layer.digest, { signal: AbortSignal.timeout(5_000) })) named.push(holder.host)
      assert.ok(named.filter((host) => host.startsWith('127.0.2.')).length >= 20, `the DHT names ${named.length} holders: ${named.join(' ')}`)
    } finally {
      await probe.stop()
    }
  })
})
