import type { Logger } from 'pino'
import type { ContentProvider } from '../content/provider.js'
import type { DialAddress } from '../net/address.js'
import type { ClusterKey } from '../net/cluster-key.js'
import type { NodeReputation } from '../net/node-reputation.js'
import type { TransferLedger } from '../observe/ledger.js'
import type { Metrics } from '../observe/metrics.js'
import type { Clock } from '../util/clock.js'
import type { BufferPool } from '../util/buffer-pool.js'
import type { BanPolicy } from './ban-policy.js'
import type { PieceFetcher } from './http-pieces.js'
import type { MetainfoCache } from './metainfo-cache.js'

export const DEFAULT_SEED_IDLE_MS = 10 * 60_000
export const DEFAULT_LINGER_MS = 60_000
export const DEFAULT_PIECE_CACHE_BYTES = 32 * 1024 * 1024

export interface WebTorrentSwarmInit {
  dataDir: string
  wirePort: number
  /** This node's address as peers see it, written into its peer id. */
  identity: DialAddress
  /** Bytes per second over all uploads; undefined or 0 for none. */
  uploadLimit?: number
  pieceCacheBytes?: number
  seedIdleMs?: number
  /** How long a finished or abandoned download stays (seeding from its file) before removal. */
  lingerMs?: number
  /** A wire of no use for this long is closed (see WireGuard.sweep). */
  peerIdleMs?: number
  /** BitTorrent connections kept at once per blob and over all blobs (defaults in peer-wires.ts). */
  maxWiresPerSwarm?: number
  maxWires?: number
  /** Peers must prove it before any piece flows; none: an open swarm. */
  clusterKey?: ClusterKey | undefined
  /** Offer and use whole-piece transfers over HTTP with peers that offer them too (default true). */
  httpPieces?: boolean
  /** Threads checking whole pieces' SHA-1 off the main thread (default DEFAULT_VERIFY_THREADS, piece-verifier.ts); 0: the engine checks them on the main thread. */
  verifyThreads?: number
}

export interface SwarmComponents {
  content: ContentProvider
  metainfo: MetainfoCache
  ledger: TransferLedger
  bans: BanPolicy
  logger: Logger
  metrics: Metrics
  clock?: Clock
  /** Fetches whole pieces from peers' registry APIs. */
  pieces?: PieceFetcher
  /** Buffers for pieces read from downloads, where fetched pieces' buffers go back once nothing uses them, and the limit fetches wait under. */
  pieceBuffers?: Pick<BufferPool, 'acquire' | 'release' | 'hasRoomFor' | 'released'>
  /** The port of this node's registry API, where it serves whole pieces. */
  registryPort?: () => number
  /** One name and one ban list per node, shared with the mirror. */
  reputation?: NodeReputation
}
