import type { Logger } from 'pino'
import type { ContentProvider } from '../content/provider.js'
import { FirstPullSources } from '../mirror/first-pull-sources.js'
import type { HolderHealth } from '../mirror/holder-health.js'
import type { PeerClient } from '../mirror/peer-client.js'
import type { LabelValues } from '../observe/label-values.js'
import type { Metrics } from '../observe/metrics.js'
import type { Advertiser } from '../routing/advertiser.js'
import { ClusterMembers } from '../routing/members.js'
import type { Router } from '../routing/router.js'
import { WithFirstPulls } from '../upstream/first-pull-content.js'
import { FirstPulls } from '../upstream/first-pulls.js'
import { UpstreamClient } from '../upstream/registry-client.js'
import { UpstreamSource } from '../upstream/upstream-source.js'
import type { Clock } from '../util/clock.js'
import type { Service } from '../util/service.js'
import type { FirstPullStats } from '../status/stats.js'

export interface FirstPullWiring {
  firstPulls: FirstPulls
  members: ClusterMembers
  /** The content store with the verified first pulls kept here. */
  content: ContentProvider
  /** Started after the router and advertiser, stopped before them. */
  services: Service[]
}

export interface FirstPullComponents {
  content: ContentProvider
  router: Router
  advertiser: () => Advertiser
  peers: PeerClient
  health: HolderHealth
  metrics: Metrics
  registryLabels: LabelValues
  clock: Clock
  log: (component: string) => Logger
  /** This node's name as the others know it (`host:registryPort`). */
  self: () => string
}

export interface FirstPullInit {
  dataDir: string
  registryConfigPath: string | undefined
  maxUpstreamFetches: number | undefined
  /** Hosts of the mirrored registries: the only ones fetched from (none: any). */
  registries: string[]
  stallTimeoutMs: number
  lingerMs: number | undefined
}

/** The parts of first pulls (`--upstream-fetch`): members, sources up the relay tree and upstream, the pulls. */
export function wireFirstPulls(components: FirstPullComponents, init: FirstPullInit): FirstPullWiring {
  const { metrics, registryLabels, clock, log } = components
  const client = new UpstreamClient({ clock, logger: log('upstream') })
  const upstream = new UpstreamSource({ client }, { registryConfigPath: init.registryConfigPath, registries: init.registries, ...(init.maxUpstreamFetches ? { maxConcurrent: init.maxUpstreamFetches } : {}) })
  const members = new ClusterMembers({ router: components.router, announce: (key) => components.advertiser().hold(key), logger: log('members'), clock })
  const sources = new FirstPullSources({ members, peers: components.peers, upstream, health: components.health, self: components.self })
  const firstPulls = new FirstPulls({
    logger: log('first-pull'), clock,
    sources: (request) => sources.for(request),
    convict: (source, digest, why) => sources.convict(source, digest, why),
    verified: (digest) => components.advertiser().hold(digest),
    removed: (digest) => components.advertiser().release(digest),
    received: (request, source, bytes) => metrics.firstPullBytes.inc({ registry: registryLabels.of(request.registry), source: source.kind }, bytes),
    finished: (request, outcome, source) => metrics.firstPulls.inc({ registry: registryLabels.of(request.registry), source: source?.kind ?? 'none', outcome }),
  }, { dataDir: init.dataDir, stallMs: init.stallTimeoutMs, ...(init.lingerMs ? { lingerMs: init.lingerMs } : {}) })
  const closeClient: Service = { start: () => {}, stop: () => client.close() }
  return { firstPulls, members, content: new WithFirstPulls(components.content, firstPulls), services: [members, firstPulls, closeClient] }
}

/** The /stats section of first pulls. */
export function firstPullStats(pulls: FirstPulls | undefined, members: ClusterMembers | undefined): FirstPullStats {
  return {
    enabled: pulls !== undefined,
    members: [...(members?.list().keys() ?? [])].sort(),
    pulls: (pulls?.list() ?? []).map((pull) => ({
      digest: pull.request.digest, registry: pull.request.registry, repository: pull.request.repository, kind: pull.request.kind,
      size: pull.size, written: pull.blob.written, verified: pull.blob.verified,
      role: pull.current.kind === 'upstream' ? 'fetcher' as const : 'relay' as const, source: pull.current.name,
      sources: [...pull.received.values()].map(({ source, bytes }) => ({ name: source.name, kind: source.kind, bytes })),
      readers: [...pull.readers].map(([reader, streams]) => ({ reader, streams })),
      startedAt: new Date(pull.startedAt).toISOString(),
    })),
  }
}
