import { systemClock, type Clock } from '../util/clock.js'
import type { PeerAddress } from './router.js'

export const DEFAULT_MAX_RECORDS = 100_000
/** One source (IPv4 address) holds at most this many records, however much it announces. */
export const DEFAULT_MAX_RECORDS_PER_SOURCE = 25_000

interface Entry {
  name: string
  key: string
  record: Buffer
  source: string
  expires: number
}

export interface RecordStoreInit {
  maxAgeMs: number
  maxRecords?: number
  maxPerSource?: number
}

/**
 * The holder records this DHT node stores for others, in place of bittorrent-dht's store
 * (which, when full, drops whole generations of records, honest ones with the rest). A record
 * is a compact peer (IPv4 + port); its source is its address, the announcer's own. When a
 * source is over its share, or the store is full, the oldest records of the source holding
 * the most go first, so a flood only evicts the flooder.
 */
export class RecordStore {
  private readonly byName = new Map<string, Map<string, Entry>>()
  private readonly bySource = new Map<string, Map<string, Entry>>()
  private count = 0
  private readonly maxRecords: number
  private readonly maxPerSource: number

  constructor(private readonly init: RecordStoreInit, private readonly clock: Clock = systemClock) {
    this.maxRecords = init.maxRecords ?? DEFAULT_MAX_RECORDS
    this.maxPerSource = init.maxPerSource ?? DEFAULT_MAX_RECORDS_PER_SOURCE
  }

  get size(): number {
    return this.count
  }

  /** Adds or refreshes a record (bittorrent-dht's store interface). */
  add(name: string, record: Uint8Array): void {
    const bytes = Buffer.from(record)
    const key = bytes.toString('hex')
    this.remove(name, bytes)
    const source = bytes.length >= 4 ? [...bytes.subarray(0, 4)].join('.') : key
    const entry: Entry = { name, key, record: bytes, source, expires: this.clock.now() + this.init.maxAgeMs }
    let records = this.byName.get(name)
    if (!records) this.byName.set(name, (records = new Map()))
    records.set(key, entry)
    let fromSource = this.bySource.get(source)
    if (!fromSource) this.bySource.set(source, (fromSource = new Map()))
    fromSource.set(`${name} ${key}`, entry)
    this.count++
    if (fromSource.size > this.maxPerSource) this.evictOldest(fromSource)
    while (this.count > this.maxRecords) this.evictOldest(this.noisiestSource())
  }

  remove(name: string, record: Uint8Array): boolean {
    const entry = this.byName.get(name)?.get(Buffer.from(record).toString('hex'))
    if (!entry) return false
    this.drop(entry)
    return true
  }

  /** Up to `limit` live records for a name, the most recently announced first. */
  get(name: string, limit = Number.MAX_SAFE_INTEGER): Buffer[] {
    const records = this.byName.get(name)
    if (!records) return []
    const now = this.clock.now()
    const live: Buffer[] = []
    for (const entry of [...records.values()].reverse()) {
      if (entry.expires <= now) this.drop(entry)
      else if (live.length < limit) live.push(entry.record)
    }
    return live
  }

  /** Records per source, the largest first (for /stats). */
  sources(limit = 10): { source: string; records: number }[] {
    return [...this.bySource].map(([source, records]) => ({ source, records: records.size }))
      .sort((a, b) => b.records - a.records).slice(0, limit)
  }

  destroy(): void {
    this.byName.clear()
    this.bySource.clear()
    this.count = 0
  }

  private noisiestSource(): Map<string, Entry> {
    let noisiest: Map<string, Entry> | undefined
    for (const records of this.bySource.values()) if (!noisiest || records.size > noisiest.size) noisiest = records
    return noisiest!
  }

  private evictOldest(records: Map<string, Entry>): void {
    const oldest = records.values().next().value
    if (oldest) this.drop(oldest)
  }

  private drop(entry: Entry): void {
    const records = this.byName.get(entry.name)
    if (!records?.delete(entry.key)) return
    if (records.size === 0) this.byName.delete(entry.name)
    const fromSource = this.bySource.get(entry.source)
    fromSource?.delete(`${entry.name} ${entry.key}`)
    if (fromSource?.size === 0) this.bySource.delete(entry.source)
    this.count--
  }
}

/** A peer record as BEP 5 stores it: 4 bytes of IPv4 address, 2 of port; undefined for anything else. */
export function encodeCompactPeer(peer: PeerAddress): Buffer | undefined {
  const parts = peer.host.split('.').map(Number)
  if (parts.length !== 4 || parts.some((part) => !Number.isInteger(part) || part < 0 || part > 255)) return undefined
  if (!Number.isInteger(peer.port) || peer.port < 1 || peer.port > 65535) return undefined
  const record = Buffer.alloc(6)
  parts.forEach((part, index) => record.writeUInt8(part, index))
  record.writeUInt16BE(peer.port, 4)
  return record
}
