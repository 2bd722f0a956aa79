import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryRoutingNetwork } from '../../src/routing/memory.js'
import { MemorySwarm, MemorySwarmNetwork } from '../../src/swarm/memory.js'
import { routerConformance } from '../support/router-conformance.js'
import { swarmConformance } from '../support/swarm-conformance.js'

routerConformance('in-memory fake', async () => {
  const network = new MemoryRoutingNetwork()
  const hosts = ['10.0.0.1', '10.0.0.2', '10.0.0.3']
  return { hosts, routers: hosts.map((host, index) => network.router({ host, port: 5000 + index })), stop: async () => {} }
})

swarmConformance('in-memory fake', async (content) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-memswarm-'))
  const network = new MemorySwarmNetwork()
  const addresses = [1, 2, 3].map((i) => ({ host: `10.0.0.${i}`, port: 6881 }))
  const swarms = addresses.map((address, i) => new MemorySwarm({ content, network }, { address, dataDir: join(dir, String(i)) }))
  for (const swarm of swarms) swarm.start()
  const [seeder, ...downloaders] = swarms
  return { seeder: seeder!, downloaders, addresses, stop: () => rm(dir, { recursive: true, force: true }) }
})
