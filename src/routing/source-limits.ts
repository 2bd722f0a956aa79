import { systemClock, type Clock } from '../util/clock.js'

export interface BucketLimit {
  perSecond: number
  burst: number
}

/** Queries a source may send to this node: BEP 5 lookups of a busy node stay well inside it. */
export const DEFAULT_QUERY_LIMIT: BucketLimit = { perSecond: 500, burst: 2_000 }
/** announce_peer a source may send: a node starting with thousands of blobs spreads them over its peers. */
export const DEFAULT_ANNOUNCE_LIMIT: BucketLimit = { perSecond: 200, burst: 2_000 }
export const MAX_TRACKED_SOURCES = 4_096

interface Bucket {
  tokens: number
  at: number
}

/** Token buckets per source address and kind of message; the least recently seen sources are forgotten first. */
export class SourceLimits {
  private readonly buckets = new Map<string, Bucket>()

  constructor(private readonly limits: Record<string, BucketLimit>, private readonly clock: Clock = systemClock, private readonly maxSources = MAX_TRACKED_SOURCES) {}

  /** Whether `source` may send one more message of `kind` now (kinds without a limit always may). */
  allow(source: string, kind: string): boolean {
    const limit = this.limits[kind]
    if (!limit) return true
    const id = `${kind} ${source}`
    const now = this.clock.now()
    const bucket = this.buckets.get(id) ?? { tokens: limit.burst, at: now }
    this.buckets.delete(id)
    bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * limit.perSecond)
    bucket.at = now
    const allowed = bucket.tokens >= 1
    if (allowed) bucket.tokens -= 1
    this.buckets.set(id, bucket)
    if (this.buckets.size > this.maxSources) this.buckets.delete(this.buckets.keys().next().value!)
    return allowed
  }
}
