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

/**
 * Small blobs (under --swarm-min-size) come whole from one holder over HTTP. The bound per pull,
 * against a healthy pull measured first: holders are raced, the next one asked after at most
 * MAX_ANSWER_MS without an answer, and a holder that failed is skipped by later requests; so a
 * pull may spend at most two answer timeouts (HEAD, then GET) on a dead or frozen holder, plus
 * 1 s of slack. Each case pulls on a requester of its own, which has learnt nothing yet.
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
    const [, frozen, , requester] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode]
    freeze(frozen)
    try {
      for (let pull = 0; pull < 6; pull++) {
        const pulled = await pullBlob(requester, image.repository, layer.digest)
        assert.equal(pulled.status, 200, `pull ${pull + 1}`)
        assert.equal(pulled.digest, layer.digest)
        assert.ok(pulled.ms < bound(), `pull ${pull + 1} took ${Math.round(pulled.ms)} ms; bound ${bound()} ms (healthy ${Math.round(healthyMs)} ms)`)
      }
    } finally {
      thaw(frozen)
    }
  })

  it('30 dead addresses announced as holders: six pulls all answer 200 within the bound, and the dead holders are reported', async () => {
    const [first, , , , requester] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode]
    const bootstrap = new StaticBootstrap([{ host: first.host, port: Number(first.p2p.split(':')[1]) }])
    const ghosts: DhtRouter[] = []
    try {
      for (let index = 0; index < 30; index++) {
        const host = `127.0.2.${index + 1}`
        const deadPort = await freePort(host)
        const ghost = new DhtRouter({ bootstrap, logger: silentLogger, metrics: createMetricsRegistry().metrics },
          { listen: { host, port: await freeUdpPort([host]) }, announcePort: () => deadPort })
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
      assert.equal(pulled.status, 200, `pull ${pull + 1}`)
      assert.equal(pulled.digest, layer.digest)
      assert.ok(pulled.ms < bound(), `pull ${pull + 1} took ${Math.round(pulled.ms)} ms; bound ${bound()} ms (healthy ${Math.round(healthyMs)} ms)`)
    }
    const view = await stats(requester) as unknown as { faults: { counts: Record<string, number> } }
    assert.ok(view.faults.counts['peer-unanswered']! >= 1, 'the dead holders were noticed, reported and skipped')
  })
})
