import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { ContentProvider, ContentWatcher } from '../../src/content/provider.js'
import type { ClusterKey } from '../../src/net/cluster-key.js'
import { ShoalNode } from '../../src/node/node.js'
import type { Clock } from '../../src/util/clock.js'
import type { TransferLedger } from '../../src/observe/ledger.js'
import { createLogger } from '../../src/observe/logger.js'
import { MemoryRoutingNetwork, type MemoryRouter } from '../../src/routing/memory.js'
import { MemorySwarm, MemorySwarmNetwork } from '../../src/swarm/memory.js'

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
  /** Peers prove it (and a part of a blob may then come over HTTP from one holder); none: an open swarm. */
  clusterKey?: ClusterKey
  clock?: Clock
}

export interface RunningRegistry {
  url: string
  port: number
  node: ShoalNode
  metrics: { registry: ShoalNode['prometheus']; metrics: ShoalNode['metrics'] }
  ledger: TransferLedger
  router: MemoryRouter
  swarm: MemorySwarm
  stop(): Promise<void>
}

/**
 * A node in this process, wired by the same composition root as the daemon (ShoalNode) over
 * in-memory routing and swarm fakes. Nodes sharing `routing` and `swarms` find and fetch from each other.
 */
export async function startRegistryApp(content: ContentProvider & Partial<ContentWatcher>, init: TestNodeInit = {}): Promise<RunningRegistry> {
  const logger = init.logger ?? silentLogger
  const dataDir = await mkdtemp(join(tmpdir(), 'shoal-node-'))
  const routing = init.routing ?? new MemoryRoutingNetwork()
  let router: MemoryRouter | undefined
  let swarm: MemorySwarm | undefined
  const watcher: ContentWatcher = content.watch ? (content as ContentWatcher) : { async *watch() { yield { type: 'resync' } } }
  const node: ShoalNode = new ShoalNode({
    source: { content, watcher, ready: async () => {}, ping: async () => {}, close: () => {} },
    router: ({ registryPort }) => (router = routing.router(lazyAddress(registryPort))),
    swarm: ({ content: swarmContent }): MemorySwarm => (swarm = new MemorySwarm({ content: swarmContent, network: init.swarms ?? new MemorySwarmNetwork() }, { address: lazyAddress(() => node.registryAddress().port), dataDir })),
  }, {
    version: 'test', registryAddr: { host: '127.0.0.1', port: 0 }, dataDir, advertisedHost: '127.0.0.1',
    resolveTimeoutMs: init.resolveTimeoutMs ?? 200, stallTimeoutMs: init.stallTimeoutMs ?? 2000, swarmMinSize: init.swarmMinSize ?? 1 << 20,
    resolveTags: init.resolveTags ?? true, registryFilters: init.registryFilters ?? [], singleSource: init.singleSource ?? false,
    ...(init.metainfoWaitMs === undefined ? {} : { metainfoWaitMs: init.metainfoWaitMs }),
    ...(init.clusterKey ? { clusterKey: init.clusterKey } : {}), ...(init.clock ? { clock: init.clock } : {}),
  }, logger)
  try {
    await node.start()
  } catch (err) {
    await node.stop()
    await rm(dataDir, { recursive: true, force: true })
    throw err
  }
  const { port } = node.registryAddress()
  return {
    url: `http://127.0.0.1:${port}`, port, node, metrics: { registry: node.prometheus, metrics: node.metrics }, ledger: node.ledger, router: router!, swarm: swarm!,
    async stop() {
      await node.stop()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

/** 127.0.0.1 with a port read when used: the registry port, known once the node listens. */
function lazyAddress(port: () => number): { host: string; port: number } {
  return { host: '127.0.0.1', get port() { return port() } }
}
