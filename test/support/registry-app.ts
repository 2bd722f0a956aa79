import { mkdtemp, rm } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { ContentProvider } from '../../src/content/provider.js'
import { Mirror } from '../../src/mirror/mirror.js'
import { MetainfoService } from '../../src/mirror/metainfo-service.js'
import { PeerClient } from '../../src/mirror/peer-client.js'
import { SwarmJoins } from '../../src/mirror/swarm-join.js'
import { HttpServer } from '../../src/net/http-server.js'
import { createLogger } from '../../src/observe/logger.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { createRegistryApp } from '../../src/registry/app.js'
import { MemoryRoutingNetwork, type MemoryRouter } from '../../src/routing/memory.js'
import { MemorySwarm, MemorySwarmNetwork } from '../../src/swarm/memory.js'
import { MetainfoCache } from '../../src/swarm/metainfo-cache.js'
import { SwarmState } from '../../src/swarm/state.js'

export const silentLogger = createLogger('silent')

/** Captures log lines in memory, for tests that assert what was (not) logged. */
export function memoryLogger(level: 'debug' | 'info' = 'debug') {
  const lines: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      done()
    },
  })
  return { logger: createLogger(level, sink), lines }
}

export interface TestNodeInit {
  resolveTags?: boolean
  logger?: ReturnType<typeof createLogger>
  routing?: MemoryRoutingNetwork
  swarms?: MemorySwarmNetwork
  swarmMinSize?: number
  resolveTimeoutMs?: number
  stallTimeoutMs?: number
  /** How long this node lets a peer wait for metainfo it must compute (0: answer 503 at once). */
  metainfoWaitMs?: number
  singleSource?: boolean
  registryFilters?: RegExp[]
}

export interface RunningRegistry {
  url: string
  port: number
  metrics: ReturnType<typeof createMetricsRegistry>
  state: SwarmState
  router: MemoryRouter
  swarm: MemorySwarm
  stop(): Promise<void>
}

/**
 * A node in this process: the real registry app, mirror and peer HTTP client over in-memory
 * routing and swarm fakes. Nodes sharing `routing` and `swarms` find and fetch from each other.
 */
export async function startRegistryApp(content: ContentProvider, init: TestNodeInit = {}): Promise<RunningRegistry> {
  const metrics = createMetricsRegistry()
  const logger = init.logger ?? silentLogger
  const dataDir = await mkdtemp(join(tmpdir(), 'shoal-node-'))
  let listener: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end()
  const server = new HttpServer({ logger }, { address: { host: '127.0.0.1', port: 0 }, listener: (req, res) => listener(req, res) })
  const { port } = await server.start()
  const router = (init.routing ?? new MemoryRoutingNetwork()).router({ host: '127.0.0.1', port })
  const swarm = new MemorySwarm({ content, network: init.swarms ?? new MemorySwarmNetwork() }, { address: { host: '127.0.0.1', port }, dataDir })
  const state = new SwarmState()
  const metainfo = new MetainfoCache({ content, logger, metrics: metrics.metrics }, { dataDir })
  const peers = new PeerClient()
  const holds = { hold: (key: string) => router.advertise([key]), release: () => {} }
  const stallMs = init.stallTimeoutMs ?? 2000
  const joins = new SwarmJoins({ router, peers, swarm, metainfo, advertiser: holds, logger }, { stallMs })
  const mirror = new Mirror({ content, router, peers, swarm, joins, state, logger, metrics: metrics.metrics }, {
    resolveTimeoutMs: init.resolveTimeoutMs ?? 200, swarmMinSize: init.swarmMinSize ?? 1 << 20, stallTimeoutMs: stallMs, resolveTags: init.resolveTags ?? true,
    singleSource: init.singleSource ?? false, registryFilters: init.registryFilters ?? [],
  })
  const metainfoService = new MetainfoService({ content, swarm, metainfo, logger }, init.metainfoWaitMs === undefined ? {} : { waitMs: init.metainfoWaitMs })
  const app = createRegistryApp({ mirror, metainfo: metainfoService, logger, metrics: metrics.metrics, state, ready: () => true })
  listener = app.callback()
  return {
    url: `http://127.0.0.1:${port}`, port, metrics, state, router, swarm,
    async stop() {
      joins.stop()
      await server.stop()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}
