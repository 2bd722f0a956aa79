import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { StaticBootstrap } from '../../src/routing/bootstrap.js'
import { DhtRouter } from '../../src/routing/dht.js'
import { MetainfoCache } from '../../src/swarm/metainfo-cache.js'
import { TransferLedger } from '../../src/observe/ledger.js'
import { BanPolicy } from '../../src/swarm/ban-policy.js'
import { WebTorrentSwarm } from '../../src/swarm/webtorrent-swarm.js'
import { freePort, freeUdpPort } from '../support/ports.js'
import { silentLogger } from '../support/registry-app.js'
import { routerConformance } from '../support/router-conformance.js'
import { swarmConformance } from '../support/swarm-conformance.js'

routerConformance('bittorrent-dht on loopback', async () => {
  const hosts = ['127.0.0.91', '127.0.0.92', '127.0.0.93']
  const port = await freeUdpPort(hosts)
  const routers = hosts.map((host, index) => new DhtRouter(
    { bootstrap: new StaticBootstrap([{ host: hosts[0]!, port }]), logger: silentLogger, metrics: createMetricsRegistry().metrics },
    { listen: { host, port }, announcePort: () => 5000 + index, bootstrapRefreshMs: 200 }))
  for (const router of routers) await router.start()
  return { hosts, routers, stop: async () => { for (const router of routers) await router.stop() } }
})

swarmConformance('webtorrent on loopback', async (content: MemoryContentProvider) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-wtswarm-'))
  const swarms: WebTorrentSwarm[] = []
  const addresses = []
  for (let i = 0; i < 3; i++) {
    const { metrics } = createMetricsRegistry()
    const wirePort = await freePort()
    const nodeContent = i === 0 ? content : new MemoryContentProvider()
    const metainfo = new MetainfoCache({ content: nodeContent, logger: silentLogger, metrics }, { dataDir: join(dir, String(i)) })
    const swarm = new WebTorrentSwarm({ content: nodeContent, metainfo, ledger: new TransferLedger(), bans: new BanPolicy(), logger: silentLogger, metrics },
      { dataDir: join(dir, String(i)), wirePort, identity: { host: '127.0.0.1', port: wirePort } })
    await swarm.start()
    swarms.push(swarm)
    addresses.push({ host: '127.0.0.1', port: wirePort })
  }
  return {
    seeder: swarms[0]!, downloaders: swarms.slice(1), addresses,
    async stop() {
      for (const swarm of swarms) await swarm.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
})
