import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Switch } from '../test/e2e/netns.js'
import { proxyFetch, type Fetcher } from '../test/e2e/proxy-client.js'
import { startProcess, type Managed } from '../test/support/processes.js'
import { startShoal, type ShoalProcess } from '../test/support/shoal.js'
import { pushImage, startUpstreamRegistry, type UpstreamRegistry } from '../test/support/upstream.js'
import type { TestImage } from '../test/support/images.js'
import { eventually } from '../test/support/eventually.js'

const exec = promisify(execFile)
const PROXY_SERVER = fileURLToPath(new URL('../test/e2e/proxy-server.js', import.meta.url))
const FETCH_BLOB = fileURLToPath(new URL('./fetch-blob.js', import.meta.url))
const UPSTREAM_OCTET = 100
const CONTROL_OCTET = 250
const FETCH_TIMEOUT_MS = 15 * 60_000

async function sentBytes(namespace: string): Promise<number> {
  const { stdout } = await exec('ip', ['-n', namespace, '-j', '-s', 'link', 'show', 'eth0'])
  return (JSON.parse(stdout) as { stats64: { tx: { bytes: number } } }[])[0]!.stats64.tx.bytes
}

export interface BedNode {
  index: number
  ns: string
  address: string
  dir: string
  shoal: ShoalProcess | undefined
}

export interface FetchResult {
  node: number
  seconds: number
}

/**
 * The e2e harness's network (namespaces on a bridge, tc tbf caps, a control proxy) with
 * directory-backed shoal nodes instead of containerd, and an upstream docker-registry.
 */
export class HerdBed {
  readonly nodes: BedNode[] = []
  readonly fetch: Fetcher
  readonly upstreamUrl = `http://127.77.0.${UPSTREAM_OCTET}:5000`
  private readonly net: Switch
  private proxy: Managed | undefined
  private upstream: UpstreamRegistry | undefined
  private upstreamNs = ''

  constructor(private readonly dir: string, prefix: string) {
    this.net = new Switch(prefix)
    this.fetch = proxyFetch(join(dir, 'proxy.sock'), FETCH_TIMEOUT_MS)
  }

  async create(nodes: number): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    await this.net.create()
    const control = await this.net.attach('ctl', CONTROL_OCTET)
    this.proxy = startProcess('proxy', 'ip', ['netns', 'exec', control, process.execPath, PROXY_SERVER, join(this.dir, 'proxy.sock')], join(this.dir, 'proxy.log'))
    await eventually('the control proxy', () => existsSync(join(this.dir, 'proxy.sock')))
    this.upstreamNs = await this.net.attach('up', UPSTREAM_OCTET)
    for (let index = 1; index <= nodes; index++) {
      const ns = await this.net.attach(`n${index}`, index)
      const dir = join(this.dir, `node-${index}`)
      await mkdir(dir, { recursive: true })
      this.nodes.push({ index, ns, address: `127.77.0.${index}`, dir, shoal: undefined })
    }
  }

  /** Caps every node's link, and the upstream's, at this rate. */
  async shape(rateMbit: number): Promise<void> {
    for (const node of this.nodes) await this.net.shape(node.ns, node.index, rateMbit)
    await this.net.shape(this.upstreamNs, UPSTREAM_OCTET, rateMbit)
  }

  /** Caps the nodes' links at `nodeMbit` and the upstream's (the cluster's way out) at `upstreamMbit`. */
  async shapeLinks(nodeMbit: number, upstreamMbit: number): Promise<void> {
    for (const node of this.nodes) await this.net.shape(node.ns, node.index, nodeMbit)
    await this.net.shape(this.upstreamNs, UPSTREAM_OCTET, upstreamMbit)
  }

  /** Bytes the upstream namespace has sent on its link (headers and all). */
  upstreamSentBytes(): Promise<number> {
    return sentBytes(this.upstreamNs)
  }

  /** Bytes a node has sent on its link (headers and all). */
  nodeSentBytes(node: BedNode): Promise<number> {
    return sentBytes(node.ns)
  }

  async startUpstream(...images: TestImage[]): Promise<void> {
    this.upstream = await startUpstreamRegistry(join(this.dir, 'upstream'), { host: `127.77.0.${UPSTREAM_OCTET}`, port: 5000 }, { netns: this.upstreamNs })
    await eventually('the upstream registry', async () => (await this.fetch(`${this.upstreamUrl}/v2/`)).status === 200, 20_000)
    for (const image of images) await pushImage(this.upstreamUrl, image, this.fetch)
  }

  /** A `shoal registry` per node over `layoutDir(index)`, DHT-bootstrapped from the other nodes. */
  async startShoals(layoutDir: (index: number) => string, args: string[]): Promise<void> {
    for (const node of this.nodes) {
      const peers = this.nodes.filter((peer) => peer !== node).map((peer) => `${peer.address}:5001`).join(',')
      node.shoal = await startShoal({
        dir: node.dir, name: 'shoal', netns: node.ns, waitReady: false,
        registryAddr: `${node.address}:5000`, metricsAddr: `${node.address}:9090`,
        args: ['--content-dir', layoutDir(node.index), '--data-dir', join(node.dir, 'data'), '--p2p-addr', `${node.address}:5001`,
          '--static-bootstrap-peers', peers, '--log-level', 'info', ...args],
      })
    }
    for (const node of this.nodes) {
      await eventually(`shoal on node ${node.index}`, async () => (await this.fetch(`http://${node.address}:5000/readyz`).catch(() => undefined))?.status === 200, 30_000, 200)
    }
  }

  /** The shoal (and docker-registry) processes: `ip netns exec` execs them under the same pid. */
  daemonPids(): number[] {
    return [...this.nodes.map((node) => node.shoal?.process.child.pid), this.upstream?.process.child.pid].filter((pid): pid is number => pid !== undefined)
  }

  async stopShoals(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.shoal?.stop()))
    for (const node of this.nodes) node.shoal = undefined
  }

  async stats(node: BedNode): Promise<{ totals: { sent: number; received: number } }> {
    return (await this.fetch(`http://${node.address}:9090/stats`)).json() as Promise<{ totals: { sent: number; received: number } }>
  }

  /** GETs a blob inside each node's namespace at the same moment; each node's time. */
  async fetchAll(nodes: BedNode[], url: (node: BedNode) => string, digest: string): Promise<FetchResult[]> {
    return Promise.all(nodes.map(async (node) => {
      const { stdout } = await exec('ip', ['netns', 'exec', node.ns, process.execPath, FETCH_BLOB, url(node), digest, String(FETCH_TIMEOUT_MS)],
        { timeout: FETCH_TIMEOUT_MS + 10_000 })
      const result = JSON.parse(stdout) as { seconds: number; digestOk: boolean }
      if (!result.digestOk) throw new Error(`node ${node.index} received bytes that do not match ${digest}`)
      return { node: node.index, seconds: result.seconds }
    }))
  }

  async destroy(): Promise<void> {
    await this.stopShoals()
    await this.upstream?.stop()
    await this.proxy?.stop()
    await this.net.destroy()
  }
}
