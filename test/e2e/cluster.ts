import { randomInt } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startContainerd, type ContainerdNode } from '../support/containerd.js'
import { startProcess, type Managed } from '../support/processes.js'
import { runShoal, startShoal, type ShoalProcess } from '../support/shoal.js'
import { startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream.js'
import { Switch } from './netns.js'
import { proxyFetch, type Fetcher } from './proxy-client.js'
import { eventually } from '../support/eventually.js'

const PROXY_SERVER = fileURLToPath(new URL('./proxy-server.js', import.meta.url))
export const UPSTREAM_OCTET = 100
const CONTROL_OCTET = 250
export const REGISTRY_PORT = 5000
export const P2P_PORT = 5001
export const METRICS_PORT = 9090
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

export interface E2eNode {
  index: number
  ns: string
  address: string
  dir: string
  containerd: ContainerdNode
  shoal: ShoalProcess | undefined
  registryUrl: string
  metricsUrl: string
}

export interface E2eInit {
  dir: string
  nodes: number
  /** Namespace names start with this; it must be unique per run (e.g. the pid). */
  prefix: string
  /** Per-node link cap in Mbit/s (tc tbf), none if undefined. */
  rateMbit?: number
  /** Extra flags for every `shoal registry`. */
  shoalArgs?: string[]
}

/**
 * A cluster on one machine: N nodes, each a network namespace with its own containerd and
 * `shoal registry`, configured by `shoal configuration`; an upstream docker-registry in its
 * own namespace; and a control namespace whose proxy lets the tests reach them all.
 */
export class E2eCluster {
  readonly nodes: E2eNode[] = []
  readonly upstreamUrl = `http://127.77.0.${UPSTREAM_OCTET}:${REGISTRY_PORT}`
  readonly upstreamHost = `127.77.0.${UPSTREAM_OCTET}:${REGISTRY_PORT}`
  readonly fetch: Fetcher
  private readonly net: Switch
  private upstream: UpstreamRegistry | undefined
  private upstreamNs = ''
  private proxy: Managed | undefined
  private readonly strangers: ShoalProcess[] = []
  /** The cluster key as the chart makes it (64 random alphanumerics), in a file passed with --cluster-key-file. */
  readonly clusterKey = Array.from({ length: 64 }, () => ALPHANUMERIC[randomInt(ALPHANUMERIC.length)]).join('')

  constructor(private readonly init: E2eInit) {
    this.net = new Switch(init.prefix)
    this.fetch = proxyFetch(join(init.dir, 'proxy.sock'))
  }

  async start(): Promise<void> {
    await mkdir(this.init.dir, { recursive: true })
    await this.net.create()
    const control = await this.net.attach('ctl', CONTROL_OCTET)
    this.proxy = startProcess('proxy', 'ip', ['netns', 'exec', control, process.execPath, PROXY_SERVER, join(this.init.dir, 'proxy.sock')], join(this.init.dir, 'proxy.log'))
    await eventually('the control proxy', () => existsSync(join(this.init.dir, 'proxy.sock')))
    this.upstreamNs = await this.net.attach('up', UPSTREAM_OCTET)
    await this.startUpstream()
    for (let index = 1; index <= this.init.nodes; index++) this.nodes.push(await this.startNode(index))
    await Promise.all(this.nodes.map((node) => this.waitReady(node)))
  }

  async stop(): Promise<void> {
    for (const stranger of this.strangers) await stranger.stop()
    for (const node of this.nodes) {
      await node.shoal?.stop()
      await node.containerd.stop()
    }
    await this.upstream?.stop()
    await this.proxy?.stop()
    await this.net.destroy()
  }

  async startUpstream(): Promise<void> {
    this.upstream = await startUpstreamRegistry(join(this.init.dir, 'upstream'), { host: `127.77.0.${UPSTREAM_OCTET}`, port: REGISTRY_PORT },
      { netns: this.upstreamNs, accessLog: true })
    await eventually('the upstream registry', async () => (await this.fetch(`${this.upstreamUrl}/v2/`)).status === 200, 20_000)
  }

  async stopUpstream(): Promise<void> {
    await this.upstream?.stop()
    this.upstream = undefined
  }

  upstreamLog(): string {
    return join(this.init.dir, 'upstream', 'registry.log')
  }

  /** Caps the upstream registry's link (its way out to the nodes), as a NAT gateway or interconnect would. */
  async shapeUpstream(rateMbit: number | undefined): Promise<void> {
    await this.net.shape(this.upstreamNs, UPSTREAM_OCTET, rateMbit)
  }

  async startShoal(node: E2eNode, extraArgs: string[] = []): Promise<void> {
    const peers = this.nodes.length ? this.nodes : Array.from({ length: this.init.nodes }, (_, i) => ({ address: `127.77.0.${i + 1}` }))
    node.shoal = await startShoal({
      dir: node.dir, name: 'shoal', netns: node.ns, waitReady: false, clusterKey: [this.clusterKey],
      registryAddr: `${node.address}:${REGISTRY_PORT}`, metricsAddr: `${node.address}:${METRICS_PORT}`,
      args: ['--containerd-sock', node.containerd.socket, '--containerd-content-path', node.containerd.contentPath,
        '--containerd-registry-config-path', node.containerd.registryConfigPath, '--containerd-config-file', node.containerd.configFile,
        '--data-dir', join(node.dir, 'shoal-data'), '--p2p-addr', `${node.address}:${P2P_PORT}`,
        '--static-bootstrap-peers', peers.filter((peer) => peer.address !== node.address).map((peer) => `${peer.address}:${P2P_PORT}`).join(','),
        ...(this.init.shoalArgs ?? []), ...extraArgs],
    })
  }

  /**
   * A namespace on the same bridge running `shoal registry` without the key (an open swarm),
   * holding the OCI layout at `layoutDir` and bootstrapping from every node.
   */
  async startStranger(octet: number, layoutDir: string): Promise<{ shoal: ShoalProcess; metricsUrl: string; registryUrl: string }> {
    const ns = await this.net.attach(`x${octet}`, octet)
    const address = `127.77.0.${octet}`
    const dir = join(this.init.dir, `stranger-${octet}`)
    await mkdir(dir, { recursive: true })
    const shoal = await startShoal({
      dir, name: 'stranger', netns: ns, waitReady: false, clusterKey: null,
      registryAddr: `${address}:${REGISTRY_PORT}`, metricsAddr: `${address}:${METRICS_PORT}`,
      args: ['--content-dir', layoutDir, '--data-dir', join(dir, 'data'), '--p2p-addr', `${address}:${P2P_PORT}`,
        '--static-bootstrap-peers', this.nodes.map((node) => `${node.address}:${P2P_PORT}`).join(',')],
    })
    this.strangers.push(shoal)
    return { shoal, metricsUrl: `http://${address}:${METRICS_PORT}`, registryUrl: `http://${address}:${REGISTRY_PORT}` }
  }

  async waitReady(node: E2eNode, timeoutMs = 30_000): Promise<void> {
    await eventually(`shoal on node ${node.index} ready`, async () => {
      if (node.shoal?.process.child.exitCode !== null) throw new Error(`shoal on node ${node.index} exited; see ${node.dir}/shoal.log`)
      return (await this.fetch(`${node.registryUrl}/readyz`)).status === 200
    }, timeoutMs, 200)
  }

  async shape(rateMbit: number | undefined): Promise<void> {
    for (const node of this.nodes) await this.net.shape(node.ns, node.index, rateMbit)
  }

  async stats(node: E2eNode): Promise<Record<string, unknown>> {
    return (await this.fetch(`${node.metricsUrl}/stats`)).json() as Promise<Record<string, unknown>>
  }

  async metrics(node: E2eNode): Promise<string> {
    return (await this.fetch(`${node.metricsUrl}/metrics`)).text()
  }

  /** What kubelet does: CRI PullImage on the node's containerd. Returns the pull time in ms. */
  async pull(node: E2eNode, image: string, timeoutMs = 180_000): Promise<number> {
    const started = performance.now()
    await node.containerd.cri.pullImage(image, { timeoutMs })
    return Math.round(performance.now() - started)
  }

  private async startNode(index: number): Promise<E2eNode> {
    const address = `127.77.0.${index}`
    const ns = await this.net.attach(`n${index}`, index)
    await this.net.shape(ns, index, this.init.rateMbit)
    const dir = join(this.init.dir, `node-${index}`)
    const containerd = await startContainerd(dir, { netns: ns })
    const node: E2eNode = { index, ns, address, dir, containerd, shoal: undefined,
      registryUrl: `http://${address}:${REGISTRY_PORT}`, metricsUrl: `http://${address}:${METRICS_PORT}` }
    await this.configure(node)
    await this.startShoal(node)
    return node
  }

  /** `shoal configuration` as the chart's init container runs it. */
  async configure(node: E2eNode): Promise<void> {
    const result = await runShoal(['configuration', '--containerd-sock', node.containerd.socket, '--containerd-config-file', node.containerd.configFile,
      '--containerd-registry-config-path', node.containerd.registryConfigPath, '--mirrored-registries', this.upstreamUrl,
      '--mirror-targets', node.registryUrl])
    if (result.code !== 0) throw new Error(`shoal configuration on node ${node.index} failed: ${result.stderr}`)
  }
}
