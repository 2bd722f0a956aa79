import type { Logger } from 'pino'
import type { TransferLedger } from '../observe/ledger.js'
import { peerKey, type PeerAddress, type Router } from '../routing/router.js'
import { systemClock, type Clock } from '../util/clock.js'
import { NodeReputation } from '../net/node-reputation.js'

export interface HolderHealthComponents {
  clock?: Clock
  /** Where the record of a holder that failed is dropped. */
  router?: Pick<Router, 'forget'>
  ledger?: TransferLedger
  logger?: Logger
  /** The node's one ban list, shared with the swarm's ban policy (a new one by default). */
  reputation?: NodeReputation
}

/** Answer timeout before anything was measured, and its bounds. */
export const INITIAL_ANSWER_MS = 300
export const MIN_ANSWER_MS = 250
export const MAX_ANSWER_MS = 2_000
/** A holder that failed is skipped this long, doubling per further failure up to MAX_SKIP_MS. */
export const FIRST_SKIP_MS = 10_000
export const MAX_SKIP_MS = 120_000
/** A holder that gave bytes or metainfo that do not match the digest is not asked again for this long. */
export const LIAR_BAN_MS = 10 * 60_000
const ANSWER_FACTOR = 4
const SMOOTHING = 0.2
const MAX_TRACKED = 4096
/** Holders that recently gave a key are asked first for it, before the DHT names any. */
export const RECENT_HOLDER_MS = 60_000
const RECENT_KEYS = 1024
const RECENT_PER_KEY = 4

/**
 * What this node has learnt about holders' HTTP APIs: how fast they usually answer (so a
 * silent one is given up on after a few hundred ms, not the stall timeout) and which failed
 * lately (so no later request waits on them again).
 */
export class HolderHealth {
  private smoothedMs = INITIAL_ANSWER_MS / ANSWER_FACTOR
  private readonly failures = new Map<string, { until: number; count: number }>()
  private readonly recent = new Map<string, Map<string, { peer: PeerAddress; at: number }>>()
  private readonly reputation: NodeReputation
  private readonly clock: Clock

  constructor(private readonly components: HolderHealthComponents = {}) {
    this.clock = components.clock ?? systemClock
    this.reputation = components.reputation ?? new NodeReputation(this.clock)
  }

  /** How long to wait for a holder's answer before asking the next one as well. */
  answerTimeoutMs(): number {
    return Math.round(Math.min(MAX_ANSWER_MS, Math.max(MIN_ANSWER_MS, ANSWER_FACTOR * this.smoothedMs)))
  }

  answered(peer: PeerAddress, elapsedMs: number): void {
    this.smoothedMs += SMOOTHING * (Math.min(elapsedMs, MAX_ANSWER_MS) - this.smoothedMs)
    this.failures.delete(peerKey(peer))
  }

  /** `peer` delivered `key`: later requests for it ask this holder first. */
  delivered(key: string, peer: PeerAddress): void {
    const holders = this.recent.get(key) ?? new Map<string, { peer: PeerAddress; at: number }>()
    this.recent.delete(key)
    this.recent.set(key, holders)
    holders.delete(peerKey(peer))
    holders.set(peerKey(peer), { peer, at: this.clock.now() })
    if (holders.size > RECENT_PER_KEY) holders.delete(holders.keys().next().value as string)
    if (this.recent.size > RECENT_KEYS) this.recent.delete(this.recent.keys().next().value as string)
  }

  /** Holders that delivered `key` within RECENT_HOLDER_MS and are not being skipped, most recent first. */
  recentHolders(key: string): PeerAddress[] {
    const now = this.clock.now()
    return [...(this.recent.get(key)?.values() ?? [])].reverse()
      .filter((entry) => now - entry.at < RECENT_HOLDER_MS && !this.isSkipped(entry.peer)).map((entry) => entry.peer)
  }

  /**
   * Records that `peer` failed to answer for `key`: it is skipped for a while, its record for
   * `key` is dropped from this node's DHT store, and the first failure in a row is reported.
   */
  failed(peer: PeerAddress, key: string, why: string): void {
    this.components.router?.forget(key, peer)
    this.recent.get(key)?.delete(peerKey(peer))
    if (!this.mark(peer)) return
    this.components.ledger?.record({ type: 'fault', kind: 'peer-unanswered', detail: `${peerKey(peer)} for ${key}: ${why}` })
    this.components.logger?.info({ peer: peerKey(peer), key, why }, 'holder did not answer; skipping it for a while')
  }

  /**
   * `peer` gave something for `key` that contradicts its digest (bytes, size or metainfo): it is
   * not asked again for LIAR_BAN_MS, whatever it answers meanwhile, and its record is dropped.
   */
  lied(peer: PeerAddress, key: string, why: string): void {
    this.components.router?.forget(key, peer)
    this.recent.get(key)?.delete(peerKey(peer))
    if (!this.reputation.ban(peerKey(peer), LIAR_BAN_MS)) return
    this.components.ledger?.record({ type: 'fault', kind: 'peer-lied', detail: `${peerKey(peer)} for ${key}: ${why}` })
    this.components.logger?.warn({ peer: peerKey(peer), key, why }, 'holder contradicted the digest; not asking it again for a while')
  }

  /** Whether the node is banned, for a lie over HTTP or a bad piece over the wire. */
  isBanned(peer: PeerAddress): boolean {
    return this.reputation.isBanned(peerKey(peer))
  }

  /** True if the holder was not already being skipped. */
  private mark(peer: PeerAddress): boolean {
    const key = peerKey(peer)
    const previous = this.failures.get(key)
    const fresh = !previous || previous.until <= this.clock.now()
    const count = (previous?.count ?? 0) + 1
    this.failures.delete(key)
    this.failures.set(key, { count, until: this.clock.now() + Math.min(MAX_SKIP_MS, FIRST_SKIP_MS * 2 ** (count - 1)) })
    if (this.failures.size > MAX_TRACKED) this.failures.delete(this.failures.keys().next().value as string)
    return fresh
  }

  isSkipped(peer: PeerAddress): boolean {
    if (this.isBanned(peer)) return true
    const failure = this.failures.get(peerKey(peer))
    return failure !== undefined && failure.until > this.clock.now()
  }
}
