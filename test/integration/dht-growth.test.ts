import { after, before, describe, it } from 'node:test'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { StaticBootstrap } from '../../src/routing/bootstrap.js'
import { DhtRouter } from '../../src/routing/dht.js'
import { eventually } from '../support/eventually.js'
import { freeUdpPort } from '../support/ports.js'
import { silentLogger } from '../support/registry-app.js'

const JOINERS = 58
const EARLY_KEYS = 200

/**
 * A DaemonSet rollout: the first nodes announce what they hold while the DHT has two nodes,
 * then many more join, and some land closer to the keys than the nodes storing the records.
 * A lookup asks only the K (20) closest nodes it learns of, so the early records must move to them.
 */
describe('DHT records when the cluster grows after they were announced', () => {
  const hosts = Array.from({ length: JOINERS + 2 }, (_, index) => `127.0.3.${index + 1}`)
  const routers: DhtRouter[] = []
  const keys = Array.from({ length: EARLY_KEYS }, (_, index) => `sha256:growth-${index}`)
  let port: number

  const start = async (index: number): Promise<DhtRouter> => {
    const router = new DhtRouter(
      { bootstrap: new StaticBootstrap([{ host: hosts[0]!, port }]), logger: silentLogger, metrics: createMetricsRegistry().metrics },
      { listen: { host: hosts[index]!, port }, announcePort: () => 6000 + index, bootstrapRefreshMs: 200, withdrawTimeoutMs: 0 })
    await router.start()
    routers.push(router)
    return router
  }

  before(async () => {
    port = await freeUdpPort(hosts)
    const early = await start(0)
    early.advertise(keys)
    const second = await start(1)
    // The records go to the two nodes there are (the first announce reached nobody, so it is made again).
    await eventually('the early holder announced to the second node', () => second.stats().storedRecords >= keys.length, 20_000)
    // Each joiner holds content of its own, as nodes do: its announces make it known around the DHT.
    for (let index = 2; index < hosts.length; index++) (await start(index)).advertise([0, 1, 2].map((n) => `sha256:joiner-${index}-${n}`))
    const asker = routers.at(-1)!
    await eventually('the last node knows 30 nodes', () => asker.stats().nodes >= 30, 20_000)
  })
  after(async () => {
    await Promise.all(routers.map((router) => router.stop()))
  })

  it('the node that joined last finds the first holder of every key: the holder announced again as the table grew', async () => {
    const asker = routers.at(-1)!
    const unfound = new Set(keys)
    await eventually('every key found by the last node', async () => {
      for (let from = 0; from < keys.length; from += 16) {
        await Promise.all(keys.slice(from, from + 16).filter((key) => unfound.has(key)).map(async (key) => {
          for await (const peer of asker.lookup(key, { signal: AbortSignal.timeout(3_000) })) if (peer.host === hosts[0]) unfound.delete(key)
        }))
      }
      return unfound.size === 0
    }, 20_000)
  })
})
