import type { Logger } from 'pino'
import { Mirror } from '../mirror/mirror.js'
import { PieceService } from '../mirror/piece-service.js'
import { MetainfoService } from '../mirror/metainfo-service.js'
import { PeerClient } from '../mirror/peer-client.js'
import { HolderHealth } from '../mirror/holder-health.js'
import { NodeReputation } from '../net/node-reputation.js'
import { HolderPools } from '../mirror/holder-pool.js'
import { SwarmJoins } from '../mirror/swarm-join.js'
import { formatHostPort, type HostPort } from '../net/address.js'
import type { ClusterKey } from '../net/cluster-key.js'
import { ReplayGuard } from '../net/replay-guard.js'
import { DEFAULT_CLIENT_TIMEOUT_MS, HttpServer } from '../net/http-server.js'
import { TransferLedger } from '../observe/ledger.js'
import { LabelValues } from '../observe/label-values.js'
import { componentLogger } from '../observe/logger.js'
import { createMetricsRegistry, type Metrics, type Registry } from '../observe/metrics.js'
import { createRegistryApp } from '../registry/app.js'
import { StreamSlots } from '../registry/stream-slots.js'
import { Advertiser } from '../routing/advertiser.js'
import { EMPTY_DHT_STATS, type DhtStats } from '../routing/dht-stats.js'
import { createMetricsApp } from '../status/metrics-app.js'
import { Measurer } from '../status/measure.js'
import type { StatsSources } from '../status/stats.js'
import { BufferPool } from '../util/buffer-pool.js'
import { BanPolicy } from '../swarm/ban-policy.js'
import { MetainfoCache } from '../swarm/metainfo-cache.js'
import type { Swarm } from '../swarm/swarm.js'
import type { SwarmComponents } from '../swarm/webtorrent-options.js'
import { systemClock, type Clock } from '../util/clock.js'
import type { Service } from '../util/service.js'
import { ContentHealth } from './content-health.js'
import { firstPullStats, wireFirstPulls } from './first-pull-wiring.js'
import type { ClusterMembers } from '../routing/members.js'
import type { FirstPulls } from '../upstream/first-pulls.js'
import { peerKey, type Router } from '../routing/router.js'
import type { ContentSource } from './content-source.js'

/** The parts that differ between the daemon (containerd, DHT, webtorrent) and tests (fakes). */
export interface NodeAdapters {
  source: ContentSource
  /** `registryPort`: where peers reach this node's API, known once its server listens. */
  router(components: { metrics: Metrics; registryPort: () => number }): Router & Service & { stats?(): DhtStats }
  swarm(components: SwarmComponents): Swarm & Service
}

export interface NodeInit {
  version: string
  registryAddr: HostPort
  /** Where /metrics, /stats and /debug are served; none when undefined. */
  metricsAddr?: HostPort
  dataDir: string
  /** The host peers know this node by (stats). */
  advertisedHost: string
  resolveTimeoutMs: number
  stallTimeoutMs: number
  swarmMinSize: number
  /** Bytes of whole pieces in memory beyond which downloads fetch one piece at a time (`--piece-memory`). */
  pieceMemory?: number
  resolveTags: boolean
  registryFilters: RegExp[]
  singleSource: boolean
  /** How long a peer's metainfo request may wait for this node to hash a blob. */
  metainfoWaitMs?: number
  /** Hosts of the mirrored registries (`?ns=` values): the only `registry` label values besides `other`. */
  mirroredRegistries?: string[]
  /** HTTP: longest wait for a request's headers, on an idle connection, or for a client to take more bytes. */
  clientTimeoutMs?: number
  /** Blob bodies streamed at once; more get 503 so containerd goes upstream (peers try another holder). */
  maxBlobStreams?: number
  /** Requests between nodes are authenticated with it; none: an open swarm (warned about). */
  clusterKey?: ClusterKey | undefined
  /** Pull content nobody holds from upstream once for the cluster (`--upstream-fetch`). */
  upstreamFetch?: boolean
  /** containerd's hosts.toml tree: where each registry's upstream is named. */
  registryConfigPath?: string
  maxUpstreamFetches?: number
  /** How long a first pull's verified file is kept once nobody reads it (`--download-linger`). */
  downloadLingerMs?: number
  /** Settings shown in /stats, without secrets. */
  settings?: Record<string, unknown>
  clock?: Clock
}

export const OPEN_SWARM_WARNING = 'open swarm: no cluster key, so any process that can reach this node is believed (set --cluster-key-file; see docs/security.md)'

/** One shoal node: every component of `shoal registry`, wired once, for the daemon and the tests. */
export class ShoalNode {
  readonly clock: Clock
  readonly ledger: TransferLedger
  readonly bans: BanPolicy
  readonly reputation: NodeReputation
  readonly prometheus: Registry
  readonly metrics: Metrics
  readonly metainfo: MetainfoCache
  readonly swarm: Swarm & Service
  readonly router: Router & Service & { stats?(): DhtStats }
  readonly advertiser: Advertiser
  readonly joins: SwarmJoins
  readonly mirror: Mirror
  readonly peers: PeerClient
  readonly contentHealth: ContentHealth
  readonly holderHealth: HolderHealth
  /** First pulls from upstream; none with --upstream-fetch=false. */
  readonly firstPulls: FirstPulls | undefined
  private readonly members: ClusterMembers | undefined
  private readonly registryServer: HttpServer
  private readonly metricsServer: HttpServer | undefined
  private readonly startOrder: Service[]
  private readonly stopOrder: Service[]
  private sourceReady = false
  private readonly startedAt: Date

  constructor(adapters: NodeAdapters, private readonly init: NodeInit, private readonly logger: Logger) {
    const clock = this.clock = init.clock ?? systemClock
    this.startedAt = new Date(clock.now())
    const { registry, metrics } = createMetricsRegistry()
    this.prometheus = registry
    this.metrics = metrics
    const log = (component: string): Logger => componentLogger(logger, component)
    const { watcher } = adapters.source
    const reputation = this.reputation = new NodeReputation(clock)
    this.ledger = new TransferLedger(clock, { nodeOf: (address) => reputation.nodeOf(address) })
    this.bans = new BanPolicy(reputation)
    // Whole pieces read for peers and fetched from them (see BufferPool for why).
    const pieceBuffers = new BufferPool({ clock }, { leasedBytes: init.pieceMemory, onLeased: (bytes) => metrics.pieceMemoryBytes.set(bytes) })
    const peers = this.peers = new PeerClient(init.clusterKey, pieceBuffers)
    const registryPort = (): number => this.registryServer.address()?.port ?? init.registryAddr.port
    const router = this.router = adapters.router({ metrics, registryPort })
    const health = this.holderHealth = new HolderHealth({ clock, router, ledger: this.ledger, logger: log('mirror'), reputation })
    const registryLabels = new LabelValues(init.mirroredRegistries ?? [])
    const first = init.upstreamFetch ? wireFirstPulls({ content: adapters.source.content, router, advertiser: () => this.advertiser, peers, health, metrics, registryLabels, clock, log,
      self: () => peerKey({ host: init.advertisedHost, port: registryPort() }) }, { dataDir: init.dataDir, registryConfigPath: init.registryConfigPath, maxUpstreamFetches: init.maxUpstreamFetches, registries: init.mirroredRegistries ?? [],
      stallTimeoutMs: init.stallTimeoutMs, lingerMs: init.downloadLingerMs }) : undefined
    this.firstPulls = first?.firstPulls
    this.members = first?.members
    const content = first?.content ?? adapters.source.content
    this.metainfo = new MetainfoCache({ content, logger: log('metainfo'), metrics, ledger: this.ledger }, { dataDir: init.dataDir })
    this.swarm = adapters.swarm({ content, metainfo: this.metainfo, ledger: this.ledger, bans: this.bans, logger: log('swarm'), metrics, clock, pieces: peers, pieceBuffers, registryPort, reputation })
    this.advertiser = new Advertiser({ content: adapters.source.content, watcher, router, logger: log('advertiser'), metrics, prefetch: (blobs) => this.metainfo.prefetch(blobs) },
      { resolveTags: init.resolveTags, prefetchMinSize: init.swarmMinSize, registryFilters: init.registryFilters })
    this.contentHealth = new ContentHealth({ source: adapters.source, ledger: this.ledger, logger: log('content'), clock })
    const pools = new HolderPools({ router, health, logger: log('mirror'), clock }, { stallMs: init.stallTimeoutMs })
    this.joins = new SwarmJoins({ pools, peers, swarm: this.swarm, metainfo: this.metainfo, advertiser: this.advertiser, health, logger: log('swarm'), reputation, clock },
      { stallMs: init.stallTimeoutMs })
    this.mirror = new Mirror({ content, contentHealth: this.contentHealth, pools, peers, swarm: this.swarm, joins: this.joins, ledger: this.ledger, logger: log('mirror'), metrics, clock, firstPulls: this.firstPulls },
      { resolveTimeoutMs: init.resolveTimeoutMs, swarmMinSize: init.swarmMinSize, stallTimeoutMs: init.stallTimeoutMs, resolveTags: init.resolveTags,
        registryFilters: init.registryFilters, singleSource: init.singleSource, authenticatedPeers: init.clusterKey !== undefined })
    const metainfoService = new MetainfoService({ content, swarm: this.swarm, metainfo: this.metainfo, logger: log('metainfo') },
      init.metainfoWaitMs === undefined ? {} : { waitMs: init.metainfoWaitMs })
    const pieces = new PieceService({ content, swarm: this.swarm, ledger: this.ledger, metrics, buffers: pieceBuffers })
    const registryApp = createRegistryApp({ mirror: this.mirror, metainfo: metainfoService, pieces, logger: log('registry'), metrics, ledger: this.ledger, ready: () => this.ready(),
      clusterKey: init.clusterKey, replay: new ReplayGuard(clock), firstPulls: this.firstPulls,
      registryLabels, blobStreams: new StreamSlots(init.maxBlobStreams), // A body may pause while the swarm waits for a piece, up to the stall timeout: only longer pauses are the client's.
      clientTimeoutMs: Math.max(init.clientTimeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS, init.stallTimeoutMs + 1_000) })
    this.registryServer = new HttpServer({ logger }, { address: init.registryAddr, listener: registryApp.callback(), ...(init.clientTimeoutMs ? { clientTimeoutMs: init.clientTimeoutMs } : {}) })
    this.metricsServer = init.metricsAddr && new HttpServer({ logger }, { address: init.metricsAddr, listener: this.metricsApp(init.metricsAddr).callback() })
    const source: Service = {
      start: async (options) => {
        await adapters.source.ready(options?.signal ? { signal: options.signal } : {})
        this.sourceReady = true
      },
      stop: () => adapters.source.close(),
    }
    const servers = [this.registryServer, ...(this.metricsServer ? [this.metricsServer] : [])]
    // The servers answer probes while containerd is awaited, and stop taking requests first.
    const firstPullServices = first?.services ?? []
    this.startOrder = [...servers, source, this.contentHealth, this.metainfo, this.swarm, router, this.advertiser, this.joins, pieceBuffers, ...firstPullServices]
    this.stopOrder = [...firstPullServices, this.advertiser, this.joins, ...servers, pieceBuffers, this.peers, router, this.swarm, this.metainfo, this.contentHealth, source]
  }

  ready(): boolean {
    return this.sourceReady && this.contentHealth.available && this.router.ready()
  }

  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    for (const service of this.startOrder) {
      options.signal?.throwIfAborted()
      await service.start(options)
      if (service === this.registryServer) this.logger.info({ registry: this.registryServer.address(), metrics: this.metricsServer?.address() }, 'listening')
    }
  }

  async stop(): Promise<void> {
    for (const service of this.stopOrder) await service.stop()
  }

  /** The bound registry API address. */
  registryAddress(): HostPort {
    return { host: this.init.registryAddr.host, port: this.registryServer.address()?.port ?? this.init.registryAddr.port }
  }

  /** This node's registry API: its bound address, or loopback when bound to every address. */
  registryUrl(): string {
    const bound = this.init.registryAddr.host
    const host = !bound || bound === '0.0.0.0' ? '127.0.0.1' : bound === '::' ? '::1' : bound
    return `http://${formatHostPort({ host, port: this.registryAddress().port })}`
  }

  private metricsApp(metricsAddr: HostPort) {
    const { init, router } = this
    const stats: StatsSources = {
      node: () => {
        const p2pAddress = `${init.advertisedHost}:${this.swarm.wirePort()}`
        return { version: init.version, startedAt: this.startedAt.toISOString(), registryAddress: formatHostPort(init.registryAddr),
          metricsAddress: formatHostPort(metricsAddr), p2pAddress, peerId: p2pAddress }
      },
      ledger: this.ledger,
      bans: () => this.reputation.banned(),
      dht: () => router.stats?.() ?? EMPTY_DHT_STATS,
      advertised: () => ({ digests: this.advertiser.inventory?.blobs.size ?? 0, tags: this.advertiser.inventory?.tags.size ?? 0,
        images: this.advertiser.inventory?.images ?? 0, lastSync: this.advertiser.lastSync?.toISOString() ?? null }),
      content: () => this.contentHealth.stats(),
      trust: () => init.clusterKey ? { mode: 'cluster-key', keys: init.clusterKey.fingerprints, warning: null }
        : { mode: 'open', keys: [], warning: OPEN_SWARM_WARNING },
      firstPulls: () => firstPullStats(this.firstPulls, this.members),
      config: init.settings ?? {},
    }
    const measurer = new Measurer({ ledger: this.ledger, logger: componentLogger(this.logger, 'measure') }, { registryUrl: () => this.registryUrl() })
    return createMetricsApp({ registry: this.prometheus, stats, measurer })
  }
}
