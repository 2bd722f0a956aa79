import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeOciLayout, type TestImage } from './images.js'
import { freePort, freeUdpPort } from './ports.js'
import { startShoal, type ShoalInit, type ShoalProcess } from './shoal.js'

export interface LoopbackNode {
  index: number
  host: string
  /** `host:port` of the DHT and BitTorrent wire. */
  p2p: string
  /** `host:port` of the registry API: the node's one name in /stats, whichever address it was seen at. */
  id: string
  layoutDir: string
  shoal: ShoalProcess
  /**
   * Starts the node again with the same addresses, flags and directories (after it was stopped
   * or killed), bootstrapping from every other node as the chart's DNS bootstrap would.
   */
  relaunch(options?: { waitReady?: boolean }): Promise<ShoalProcess>
}

export interface LoopbackClusterInit {
  dir: string
  /** Images each node holds (by index from 0). */
  contents: TestImage[][]
  /** Extra flags per node. */
  args?: (index: number) => string[]
  /** A command a node runs under (strace, for one). */
  wrap?: (index: number) => string[] | undefined
  /** First address is 127.0.0.<base+1>. */
  base?: number
  waitReady?: boolean
  /** A node's cluster key lines (default: the shared test key); null: that node runs an open swarm. */
  clusterKey?: (index: number) => string[] | null
  /** Runs after a node's layout is written and before it starts (e.g. to link in big blobs). */
  beforeStart?: (index: number, layoutDir: string) => void | Promise<void>
}

/**
 * N `shoal registry` processes on loopback, each on its own 127.0.0.x address over its own
 * OCI layout directory, DHT-bootstrapped statically from the first node.
 */
export async function startLoopbackCluster(init: LoopbackClusterInit): Promise<LoopbackNode[]> {
  const base = init.base ?? 40
  const hosts = init.contents.map((_, index) => `127.0.0.${base + index + 1}`)
  const dhtPorts: number[] = []
  for (const host of hosts) dhtPorts.push(await freeUdpPort([host]))
  const nodes: LoopbackNode[] = []
  try {
    for (const [index, host] of hosts.entries()) {
      const layoutDir = join(init.dir, `node-${index + 1}`, 'layout')
      await writeOciLayout(layoutDir, init.contents[index] ?? [])
      await init.beforeStart?.(index, layoutDir)
      nodes.push(await startNodeRetryingPorts(init, nodes, { index, host, layoutDir, hosts, dhtPort: dhtPorts[index]! }))
    }
  } catch (err) {
    await stopCluster(nodes)
    throw err
  }
  return nodes
}

interface NodeSlot {
  index: number
  host: string
  layoutDir: string
  hosts: string[]
  dhtPort: number
}

/**
 * The ports were free when picked, but the BitTorrent wire listens on every address, so any
 * connection opened on this machine meanwhile may take its port: a node that exits with
 * EADDRINUSE is started again on new ports (at most twice more). Any other failure stands.
 */
async function startNodeRetryingPorts(init: LoopbackClusterInit, nodes: LoopbackNode[], slot: NodeSlot): Promise<LoopbackNode> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startNode(init, nodes, slot, attempt === 0 ? slot.dhtPort : await freeUdpPort([slot.host]))
    } catch (err) {
      const log = join(init.dir, `node-${slot.index + 1}.log`)
      const inUse = /exited with/.test((err as Error).message) && existsSync(log) && readFileSync(log, 'utf8').includes('EADDRINUSE')
      if (!inUse || attempt >= 2) throw err
    }
  }
}

async function startNode(init: LoopbackClusterInit, nodes: LoopbackNode[], slot: NodeSlot, dhtPort: number): Promise<LoopbackNode> {
  const { index, host, layoutDir, hosts } = slot
  const p2pPort = await freeTcpAndUdpPort(host, dhtPort)
  const shoalInit: ShoalInit = {
    dir: init.dir, name: `node-${index + 1}`,
    registryAddr: `${host}:${await freePort(host)}`, metricsAddr: `${host}:${await freePort(host)}`,
    waitReady: init.waitReady ?? true,
    ...(init.clusterKey ? { clusterKey: init.clusterKey(index) } : {}),
    ...(init.wrap?.(index) ? { wrap: init.wrap(index)! } : {}),
    args: ['--content-dir', layoutDir, '--data-dir', join(init.dir, `node-${index + 1}`, 'data'),
      '--p2p-addr', `${host}:${p2pPort}`, '--static-bootstrap-peers', `${hosts[0]}:${nodes[0] ? p2pOf(nodes[0]) : p2pPort}`,
      ...(init.args?.(index) ?? [])],
  }
  const node: LoopbackNode = {
    index, host, p2p: `${host}:${p2pPort}`, id: shoalInit.registryAddr, layoutDir, shoal: await startShoal(shoalInit),
    relaunch: async (options = {}) => {
      const others = nodes.filter((other) => other !== node).map((other) => other.p2p).join(',')
      const args = shoalInit.args.map((arg, position) => shoalInit.args[position - 1] === '--static-bootstrap-peers' ? others : arg)
      return (node.shoal = await startShoal({ ...shoalInit, ...options, args, name: `${shoalInit.name}-${Date.now()}` }))
    },
  }
  return node
}

function p2pOf(node: LoopbackNode): number {
  return Number(node.p2p.split(':')[1])
}

/** The wire listens on TCP on all interfaces, the DHT on UDP on `host`: the port must be free for both. */
export async function freeTcpAndUdpPort(host: string, preferred: number): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = attempt === 0 ? preferred : await freeUdpPort([host])
    if (await tcpFree(port)) return port
  }
  throw new Error(`no port free for both TCP and UDP on ${host}`)
}

async function tcpFree(port: number): Promise<boolean> {
  const { createServer } = await import('node:net')
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, () => server.close(() => resolve(true)))
  })
}

export async function stopCluster(nodes: LoopbackNode[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.shoal.stop()))
}

export async function stats(node: LoopbackNode): Promise<StatsView> {
  return (await fetch(`${node.shoal.metricsUrl}/stats`)).json() as Promise<StatsView>
}

export interface StatsView {
  version: number
  transfers: TransferView[]
  recent: TransferView[]
  served: { digest: string; peers: { peer: string; bytes: number }[] }[]
  bans: { peer: string; until: string }[]
  totals: Record<string, number>
  dht: Record<string, unknown>
  faults: { counts: Record<string, number>; recent: { kind: string; detail: string; at: string }[] }
}

export interface TransferView {
  digest: string
  infoHash: string | null
  role: string
  state: string
  size: number
  received: number
  sent: number
  progress: number
  peers: { peer: string; received: number; sent: number; pieces: number; connected: boolean }[]
  pieceSources: number[]
  sources: string[]
}
