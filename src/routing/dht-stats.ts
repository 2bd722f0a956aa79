import type DHT from 'bittorrent-dht'
import type { Logger } from 'pino'
import type { Metrics } from '../observe/metrics.js'
import type { DropKind } from './krpc-guard.js'

export interface DhtStats {
  nodes: number
  bootstrapPeers: string[]
  lastBootstrap: string | null
  announcedKeys: number
  announcesSent: number
  /** Keys waiting to be announced, or being announced now: 0 once every record is out. */
  announcesPending: number
  announceFailures: number
  /** Every datagram dropped: malformed, unauthenticated or over a rate limit. */
  droppedPackets: number
  /** Of those: not sealed with the cluster key (or stale, or replayed), and over a source's rate limit. */
  unauthenticatedPackets: number
  rateLimitedPackets: number
  /** Holder records this node stores for others, and the sources holding the most. */
  storedRecords: number
  recordSources: { source: string; records: number }[]
  /** Holder records removed from this node's store because the holder stopped answering. */
  forgottenRecords: number
  /** Holder records removed from this node's store because their holder withdrew them when it stopped. */
  withdrawnRecords: number
  /** The routing table: every node this one knows (bounded). */
  table: { id: string; address: string }[]
}

export const EMPTY_DHT_STATS: DhtStats = {
  nodes: 0, bootstrapPeers: [], lastBootstrap: null, announcedKeys: 0, announcesSent: 0, announcesPending: 0, announceFailures: 0, droppedPackets: 0,
  unauthenticatedPackets: 0, rateLimitedPackets: 0, storedRecords: 0, recordSources: [], forgottenRecords: 0, withdrawnRecords: 0, table: [],
}

const STATS_TABLE_LIMIT = 512

/** Datagrams the guarded socket dropped, counted by kind of reason; each logged at debug. */
export class DhtDrops {
  private total = 0
  private unauthenticated = 0
  private rateLimited = 0

  constructor(private readonly logger: Logger, private readonly metrics: Metrics) {}

  record(reason: string, from: string, kind: DropKind): void {
    this.total++
    if (kind === 'rate-limited') this.rateLimited++
    if (kind === 'unauthenticated') this.unauthenticated++
    this.metrics.dhtDroppedPackets.inc({ reason: kind })
    this.logger.debug({ reason, from }, 'dropped a DHT packet')
  }

  counts(): Pick<DhtStats, 'droppedPackets' | 'unauthenticatedPackets' | 'rateLimitedPackets'> {
    return { droppedPackets: this.total, unauthenticatedPackets: this.unauthenticated, rateLimitedPackets: this.rateLimited }
  }
}

/** The routing table's nodes (at most STATS_TABLE_LIMIT). */
export function routingTable(dht: DHT | undefined): DhtStats['table'] {
  const contacts = (dht?.nodes.toArray() ?? []) as { id: Uint8Array; host: string; port: number }[]
  return contacts.slice(0, STATS_TABLE_LIMIT).map((contact) => ({ id: Buffer.from(contact.id).toString('hex'), address: `${contact.host}:${contact.port}` }))
}
