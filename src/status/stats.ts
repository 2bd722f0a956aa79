import type { DhtStats } from '../routing/dht-stats.js'
import type { TransferLedger, TransferState } from '../observe/ledger.js'

/** Bumped on any incompatible change to the /stats document (see docs/stats.md). */
export const STATS_VERSION = 1

export interface NodeInfo {
  version: string
  startedAt: string
  registryAddress: string
  metricsAddress: string
  p2pAddress: string
  peerId: string
}

export interface StatsSources {
  node: () => NodeInfo
  ledger: TransferLedger
  /** Peers banned now, with when the ban ends. */
  bans: () => { peer: string; until: string }[]
  dht: () => DhtStats
  advertised: () => { digests: number; tags: number; images: number; lastSync: string | null }
  /** Whether the content store (containerd) answered its last health check. */
  content: () => ContentHealthStats
  /** Whether peers must prove a cluster key. */
  trust: () => TrustStats
  /** First pulls from upstream running or kept on this node, and the nodes it ranks for them. */
  firstPulls: () => FirstPullStats
  /** The settings in effect, without secrets. */
  config: Record<string, unknown>
}

export interface FirstPullStats {
  enabled: boolean
  /** The other nodes this node knows (the relay tree is built over them and itself). */
  members: string[]
  pulls: {
    digest: string
    registry: string
    repository: string
    kind: string
    size: number
    /** Bytes written to this node's file so far. */
    written: number
    verified: boolean
    /** `fetcher`: reads from upstream now; `relay`: reads from another node. */
    role: 'fetcher' | 'relay'
    /** Where the bytes come from now. */
    source: string
    /** Bytes from each source: upstream, or the node that relayed them. */
    sources: { name: string; kind: string; bytes: number }[]
    /** Who reads the pull now: peers (relayed on) and `containerd`. */
    readers: { reader: string; streams: number }[]
    startedAt: string
  }[]
}

export interface TrustStats {
  /** `cluster-key`: only peers that prove the key are believed; `open`: anyone who can reach the node is. */
  mode: 'cluster-key' | 'open'
  /** Fingerprints of the keys in use (never the keys). */
  keys: string[]
  warning: string | null
}

export interface ContentHealthStats {
  available: boolean
  lastCheck: string | null
  error: string | null
}

export interface TransferStats {
  key: string
  digest: string
  infoHash: string | null
  role: string
  state: string
  error: string | null
  size: number
  pieceLength: number | null
  pieces: number
  verifiedPieces: number
  progress: number
  startedAt: string
  completedAt: string | null
  finishedAt: string | null
  downloadRate: number
  uploadRate: number
  received: number
  sent: number
  /** `verified`: bytes of verified data from this peer; over all peers it adds up to `size` once complete. */
  peers: { peer: string; received: number; verified: number; sent: number; pieces: number; connected: boolean }[]
  /** Per piece: index into `sources` of the peer that supplied it, -1 while missing. */
  pieceSources: number[]
  sources: string[]
}

export function buildStats(sources: StatsSources) {
  const { ledger } = sources
  return {
    version: STATS_VERSION,
    generatedAt: new Date().toISOString(),
    node: sources.node(),
    dht: sources.dht(),
    advertised: sources.advertised(),
    transfers: [...ledger.transfers.values()].map(transferStats),
    recent: ledger.recentTransfers().map(transferStats),
    served: [...ledger.served].map(([digest, peers]) => ({ digest, peers: [...peers].map(([peer, bytes]) => ({ peer, bytes })) })),
    bans: sources.bans(),
    totals: { ...ledger.totals },
    mirror: structuredClone(ledger.mirror),
    faults: { counts: { ...ledger.faults }, recent: ledger.recentFaults.map((fault) => ({ ...fault, at: iso(fault.at)! })) },
    content: sources.content(),
    trust: sources.trust(),
    firstPulls: sources.firstPulls(),
    config: sources.config,
  }
}

export type StatsDocument = ReturnType<typeof buildStats>

function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString()
}

export function transferStats(transfer: TransferState): TransferStats {
  const pieces = transfer.pieceSources.length
  const progress = pieces > 0 ? transfer.verifiedPieces / pieces : transfer.size > 0 ? Math.min(1, transfer.received / transfer.size) : 1
  return {
    key: transfer.key,
    digest: transfer.digest,
    infoHash: transfer.infoHash ?? null,
    role: transfer.role,
    state: transfer.outcome,
    error: transfer.error ?? null,
    size: transfer.size,
    pieceLength: transfer.pieceLength ?? null,
    pieces,
    verifiedPieces: transfer.verifiedPieces,
    progress: transfer.role === 'seed' ? 1 : Number(progress.toFixed(4)),
    startedAt: iso(transfer.startedAt)!,
    completedAt: iso(transfer.completedAt),
    finishedAt: iso(transfer.finishedAt),
    downloadRate: transfer.downloadRate.rate(),
    uploadRate: transfer.uploadRate.rate(),
    received: transfer.received,
    sent: transfer.sent,
    peers: [...transfer.peers].map(([peer, counters]) => ({ peer, ...counters })),
    pieceSources: [...transfer.pieceSources],
    sources: [...transfer.sourceNames],
  }
}
