import { networkInterfaces } from 'node:os'
import type { Logger } from 'pino'
import type { RegistryConfig } from '../config/commands.js'
import { contentSource, type ContentSource } from './content-source.js'
import { Mirror } from '../mirror/mirror.js'
import { MetainfoService } from '../mirror/metainfo-service.js'
import { PeerClient } from '../mirror/peer-client.js'
import { SwarmJoins } from '../mirror/swarm-join.js'
import { formatHostPort, type DialAddress } from '../net/address.js'
import { HttpServer } from '../net/http-server.js'
import { componentLogger } from '../observe/logger.js'
import { createMetricsApp } from '../status/metrics-app.js'
import { createMetricsRegistry } from '../observe/metrics.js'
import { Measurer } from '../status/measure.js'
import { createRegistryApp } from '../registry/app.js'
import { Advertiser } from '../routing/advertiser.js'
import { DnsBootstrap, StaticBootstrap, type Bootstrap } from '../routing/bootstrap.js'
import { DhtRouter } from '../routing/dht.js'
import { MetainfoCache } from '../swarm/metainfo-cache.js'
import { SwarmState } from '../swarm/state.js'
import { WebTorrentSwarm } from '../swarm/webtorrent-swarm.js'

/** One shoal node: every component of `shoal registry`, wired, behind start()/stop(). */
export class ShoalNode {
  readonly source: ContentSource
  readonly state = new SwarmState()
  readonly metainfo: MetainfoCache
  readonly swarm: WebTorrentSwarm
  readonly advertiser: Advertiser
  readonly router: DhtRouter
  private readonly registryServer: HttpServer
  private readonly metricsServer: HttpServer
  private sourceReady = false
  private readonly startedAt = new Date()

  constructor(config: RegistryConfig, private readonly logger: Logger, version: string) {
    const { registry: promRegistry, metrics } = createMetricsRegistry()
    this.source = contentSource(config, componentLogger(logger, 'containerd'))
    const content = this.source.content
    this.metainfo = new MetainfoCache({ content, logger: componentLogger(logger, 'metainfo'), metrics }, { dataDir: config.dataDir })
    const identity = nodeIdentity(config)
    this.swarm = new WebTorrentSwarm({ content, metainfo: this.metainfo, state: this.state, logger: componentLogger(logger, 'swarm'), metrics },
      { dataDir: config.dataDir, wirePort: config.p2pAddr.port, identity, uploadLimit: config.uploadLimit })
    const router = this.router = new DhtRouter({ bootstrap: bootstrapOf(config), logger: componentLogger(logger, 'dht'), metrics },
      { listen: config.p2pAddr, announcePort: () => this.registryServer.address()?.port ?? config.registryAddr.port })
    this.advertiser = new Advertiser({ content, watcher: this.source.watcher, router, logger: componentLogger(logger, 'advertiser'), metrics,
      prefetch: (blobs) => this.metainfo.prefetch(blobs) }, { resolveTags: config.resolveTags, prefetchMinSize: config.swarmMinSize, registryFilters: config.registryFilters })
    const peers = new PeerClient()
    const joins = new SwarmJoins({ router, peers, swarm: this.swarm, metainfo: this.metainfo, advertiser: this.advertiser, logger: componentLogger(logger, 'swarm') },
      { stallMs: config.stallTimeout })
    const mirror = new Mirror({ content, router, peers, swarm: this.swarm, joins, state: this.state, logger: componentLogger(logger, 'mirror'), metrics },
      { resolveTimeoutMs: config.mirrorResolveTimeout, swarmMinSize: config.swarmMinSize, stallTimeoutMs: config.stallTimeout, resolveTags: config.resolveTags,
        registryFilters: config.registryFilters, singleSource: config.singleSource })
    const metainfoService = new MetainfoService({ content, swarm: this.swarm, metainfo: this.metainfo, logger })
    const registryApp = createRegistryApp({ mirror, metainfo: metainfoService, logger: componentLogger(logger, 'registry'), metrics, state: this.state, ready: () => this.ready() })
    this.registryServer = new HttpServer({ logger }, { address: config.registryAddr, listener: registryApp.callback() })
    const stats = {
      node: () => ({ version, startedAt: this.startedAt.toISOString(), registryAddress: formatHostPort(config.registryAddr),
        metricsAddress: formatHostPort(config.metricsAddr), p2pAddress: `${identity.host}:${this.swarm.wirePort()}`, peerId: `${identity.host}:${config.p2pAddr.port}` }),
      state: this.state,
      dht: () => router.stats(),
      advertised: () => ({ digests: this.advertiser.inventory?.blobs.size ?? 0, tags: this.advertiser.inventory?.tags.size ?? 0,
        images: this.advertiser.inventory?.images ?? 0, lastSync: this.advertiser.lastSync?.toISOString() ?? null }),
      config: { ...config, registryFilters: config.registryFilters.map(String) },
    }
    const measurer = new Measurer({ state: this.state, logger: componentLogger(logger, 'measure') }, { registryUrl: () => this.ownRegistryUrl(config) })
    this.metricsServer = new HttpServer({ logger }, { address: config.metricsAddr, listener: createMetricsApp({ registry: promRegistry, stats, measurer }).callback() })
  }

  /** This node's registry API: its bound address, or loopback when bound to every address. */
  private ownRegistryUrl(config: RegistryConfig): string {
    const bound = config.registryAddr.host
    const host = !bound || bound === '0.0.0.0' ? '127.0.0.1' : bound === '::' ? '::1' : bound
    return `http://${formatHostPort({ host, port: this.registryServer.address()?.port ?? config.registryAddr.port })}`
  }

  ready(): boolean {
    return this.sourceReady && this.router.ready()
  }

  async start(signal: AbortSignal): Promise<void> {
    const registryAddress = await this.registryServer.start()
    const metricsAddress = await this.metricsServer.start()
    this.logger.info({ registry: registryAddress, metrics: metricsAddress }, 'listening')
    await this.source.ready(signal)
    this.sourceReady = true
    await this.swarm.start()
    await this.router.start()
    this.advertiser.start()
  }

  async stop(): Promise<void> {
    await this.advertiser.stop()
    this.metainfo.stop()
    await this.registryServer.stop()
    await this.router.stop()
    await this.swarm.stop()
    await this.metricsServer.stop()
    this.source.close()
  }
}

function bootstrapOf(config: RegistryConfig): Bootstrap {
  if (config.bootstrapKind === 'dns') return new DnsBootstrap(config.dnsBootstrapDomain, config.p2pAddr.port)
  return new StaticBootstrap(config.staticBootstrapPeers)
}

/** The address peers know this node by: the p2p host if one is set, else its first external IPv4. */
function nodeIdentity(config: RegistryConfig): DialAddress {
  const host = config.p2pAddr.host && config.p2pAddr.host !== '0.0.0.0' ? config.p2pAddr.host
    : Object.values(networkInterfaces()).flat().find((address) => address && address.family === 'IPv4' && !address.internal)?.address ?? '127.0.0.1'
  return { host, port: config.p2pAddr.port }
}
