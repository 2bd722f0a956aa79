import type { Logger } from 'pino'
import { peerKey, type PeerAddress, type Router } from '../routing/router.js'
import { describeError, ShoalError } from '../util/errors.js'
import { systemClock, type Clock } from '../util/clock.js'
import type { HolderHealth } from './holder-health.js'
import { HolderSearch } from './holders.js'

/** A holder has this many answer timeouts to answer once holders of its pool answer at all. */
export const SILENT_FACTOR = 2
/** A finished lookup still answers requests that arrive this soon after it ended. */
export const SEARCH_REUSE_MS = 1_000
/** A lookup nobody can end sooner is stopped after this long. */
export const SEARCH_LIFETIME_MS = 30_000
const MAX_POOLS = 1024

/** A holder gave no answer in time (the one rule for silence, in HolderPool.ask). */
export class SilentHolderError extends ShoalError {}

export type AskHolder<T> = (peer: PeerAddress, signal: AbortSignal) => Promise<T | undefined>

export interface HolderPoolComponents {
  router: Router
  health: HolderHealth
  logger: Logger
  clock?: Clock
}

export interface HolderPoolInit {
  /** Longest wait for a holder's answer while no holder of the pool has answered. */
  stallMs: number
}

interface PendingAsk {
  question: string
  patient: boolean
  /** When it was asked (clock time). */
  started: number
  deadline: number
  shorten(at: number, why: string): void
}

export interface AskOptions {
  signal: AbortSignal
  /** What is asked (`size`, `metainfo`, `blob`, `manifest`…): answers to one question time the others. */
  question: string
  /** The answer may need work on the holder (metainfo of a blob not hashed yet), so others' answers say nothing of its pace: only the stall timeout applies. */
  patient?: boolean
}

/**
 * The holders of one key: the DHT lookup that finds them (its own lifetime, not a request's),
 * and the one place where a holder is asked and how it answered is recorded.
 *
 * The rule for a silent holder: once any holder of the pool has answered, a holder asked has
 * SILENT_FACTOR answer timeouts (measured, HolderHealth.answerTimeoutMs) to answer, else the
 * stall timeout; when a holder gives the content, the holders asked the same question at least
 * an answer timeout earlier and still silent are silent at once (they had that head start and
 * lost), the others get SILENT_FACTOR answer timeouts from then. A silent holder's ask is cut and the holder skipped for a while; an answer clears
 * that. A question that may need work on the holder (`patient`) has only the stall timeout.
 */
export class HolderPool {
  private heard = false
  private readonly pending = new Set<PendingAsk>()
  private readonly clock: Clock

  constructor(readonly key: string, readonly search: HolderSearch, private readonly components: HolderPoolComponents & { clock: Clock }, private readonly init: HolderPoolInit) {
    this.clock = components.clock
  }

  get found(): readonly PeerAddress[] {
    return this.search.found
  }

  get done(): boolean {
    return this.search.done
  }

  /** The holder at `index` in the order found, or undefined if the lookup ends or `timeoutMs` passes first. */
  nth(index: number, timeoutMs: number): Promise<PeerAddress | undefined> {
    return this.search.nth(index, timeoutMs)
  }

  /**
   * The first holder found that is not in `asked` nor banned, preferring one not skipped: a pool
   * outlives one request, so a holder found before it failed is asked after the others.
   */
  nextToAsk(asked: ReadonlySet<PeerAddress>): PeerAddress | undefined {
    let skipped: PeerAddress | undefined
    for (const peer of this.found) {
      if (asked.has(peer) || this.isBanned(peer)) continue
      if (!this.isSkipped(peer)) return peer
      skipped ??= peer
    }
    return skipped
  }

  isBanned(peer: PeerAddress): boolean {
    return this.components.health.isBanned(peer)
  }

  isSkipped(peer: PeerAddress): boolean {
    return this.components.health.isSkipped(peer)
  }

  answerTimeoutMs(): number {
    return this.components.health.answerTimeoutMs()
  }

  /** A holder whose bytes of the key failed (a stream cut, wrong bytes among others'): skipped for a while. */
  failed(peer: PeerAddress, why: string): void {
    this.components.health.failed(peer, this.key, why)
  }

  /** A holder proven to have lied about the key: banned, over the wire too. */
  lied(peer: PeerAddress, why: string): void {
    this.components.health.lied(peer, this.key, why)
  }

  /**
   * Asks `peer` under the silence rule; its answer updates the measured answer time (and a
   * value makes it a recent holder of the key), a failure or silence skips it for a while.
   * Undefined when it lacks the content, failed or was silent; throws only when `signal`
   * aborted. The signal `ask` gets stays tied to `signal` after the answer, for a body that follows.
   */
  async ask<T>(peer: PeerAddress, ask: AskHolder<T>, options: AskOptions): Promise<T | undefined> {
    const { health, logger } = this.components
    options.signal.throwIfAborted()
    const silence = new AbortController()
    const started = this.clock.now()
    let cancelTimer = (): void => {}
    const entry: PendingAsk = {
      question: options.question, patient: options.patient === true, started, deadline: Number.POSITIVE_INFINITY,
      shorten: (at, why) => {
        if (at >= entry.deadline) return
        entry.deadline = at
        cancelTimer()
        const cut = (): void => silence.abort(new SilentHolderError(`no ${options.question} answer within ${Math.round(this.clock.now() - started)} ms${why}`))
        if (at <= this.clock.now()) cut()
        else cancelTimer = this.clock.schedule(at - this.clock.now(), cut)
      },
    }
    const quick = this.heard && !options.patient
    entry.shorten(started + (quick ? this.silentMs() : this.init.stallMs), '')
    this.pending.add(entry)
    try {
      const value = await ask(peer, AbortSignal.any([options.signal, silence.signal]))
      health.answered(peer, this.clock.now() - started)
      if (value !== undefined) health.delivered(this.key, peer)
      this.answered(entry, value !== undefined)
      return value
    } catch (err) {
      if (options.signal.aborted && !silence.signal.aborted) throw err
      const why = describeError(silence.signal.aborted ? silence.signal.reason : err)
      logger.debug({ peer: peerKey(peer), key: this.key, why }, 'holder request failed')
      health.failed(peer, this.key, why)
      options.signal.throwIfAborted()
      return undefined
    } finally {
      this.pending.delete(entry)
      cancelTimer()
    }
  }

  private silentMs(): number {
    return SILENT_FACTOR * this.components.health.answerTimeoutMs()
  }

  /** Times the other asks of the same question; an answer with the content makes the ones an answer timeout older silent. */
  private answered(entry: PendingAsk, withContent: boolean): void {
    this.heard = true
    if (!withContent) return
    const now = this.clock.now()
    const headStartEnd = now - this.answerTimeoutMs()
    for (const other of [...this.pending]) {
      if (other === entry || other.question !== entry.question || other.patient) continue
      if (other.started <= headStartEnd) other.shorten(now, ', an answer timeout longer than a holder that answered')
      else other.shorten(now + this.silentMs(), ' while another holder answered')
    }
  }
}

/**
 * One pool per key, shared by every request for it: concurrent requests for one digest cost
 * one DHT lookup, and a request that is cancelled does not stop the lookup the others wait on
 * (it lives until it completes, or SEARCH_LIFETIME_MS; a finished one serves SEARCH_REUSE_MS more).
 */
export class HolderPools {
  private readonly pools = new Map<string, HolderPool>()
  private readonly clock: Clock

  constructor(private readonly components: HolderPoolComponents, private readonly init: HolderPoolInit) {
    this.clock = components.clock ?? systemClock
  }

  /** `fresh`: a finished lookup is not reused, however recent (a running one still is). */
  pool(key: string, options: { fresh?: boolean } = {}): HolderPool {
    const running = this.pools.get(key)
    const endedAt = running?.search.endedAt
    const reuseMs = options.fresh ? 0 : SEARCH_REUSE_MS
    if (running && (endedAt === undefined || this.clock.now() - endedAt < reuseMs)) return running
    const { router, health, logger } = this.components
    const search = new HolderSearch(router, key, { signal: AbortSignal.timeout(SEARCH_LIFETIME_MS), clock: this.clock, health, logger })
    const pool = new HolderPool(key, search, { ...this.components, clock: this.clock }, this.init)
    this.pools.delete(key)
    this.pools.set(key, pool)
    if (this.pools.size > MAX_POOLS) this.pools.delete(this.pools.keys().next().value as string)
    return pool
  }
}
