import type { Logger } from 'pino'
import { peerKey, type PeerAddress, type Router } from '../routing/router.js'
import type { SignalOptions } from '../util/abort.js'
import { systemClock, type Clock } from '../util/clock.js'
import { Wakeup } from '../util/wakeup.js'
import type { HolderHealth } from './holder-health.js'

/** Holders that failed lately are held back this long (or until the lookup completes) behind the others. */
export const DEFER_SKIPPED_MS = 250

/**
 * A DHT lookup running in the background: holders are kept in the order found, and callers
 * wait for the n-th one with a deadline. Holders that failed lately come after the others found
 * within DEFER_SKIPPED_MS; holders that recently delivered the key come first of all. Stops
 * when the lookup completes or `signal` aborts.
 */
export class HolderSearch {
  readonly found: PeerAddress[] = []
  private deferred: PeerAddress[] | undefined = []
  private ended: number | undefined
  private readonly clock: Clock
  private readonly changed: Wakeup

  constructor(router: Router, key: string, options: SignalOptions & { clock?: Clock; health?: HolderHealth; logger?: Logger } = {}) {
    const clock = this.clock = options.clock ?? systemClock
    const changed = this.changed = new Wakeup(clock)
    const cancelRelease = clock.schedule(DEFER_SKIPPED_MS, () => this.releaseDeferred())
    const known = new Set<string>()
    for (const peer of options.health?.recentHolders(key) ?? []) {
      known.add(peerKey(peer))
      this.found.push(peer)
    }
    void (async () => {
      try {
        for await (const peer of router.lookup(key, { signal: options.signal })) {
          if (known.has(peerKey(peer)) || options.health?.isBanned(peer)) continue
          if (this.deferred && options.health?.isSkipped(peer)) {
            this.deferred.push(peer)
            continue
          }
          this.found.push(peer)
          changed.notify()
        }
      } catch (err) {
        if (!options.signal?.aborted) options.logger?.warn({ key, err }, 'DHT lookup failed; holders found so far are used')
      } finally {
        cancelRelease()
        this.releaseDeferred()
        this.ended = clock.now()
        changed.notify()
      }
    })()
  }

  private releaseDeferred(): void {
    if (!this.deferred) return
    this.found.push(...this.deferred)
    this.deferred = undefined
    this.changed.notify()
  }

  get done(): boolean {
    return this.ended !== undefined
  }

  /** When the lookup ended (clock time), once it has. */
  get endedAt(): number | undefined {
    return this.ended
  }

  /** The holder at `index` (0 = first), or undefined if the lookup ends or `timeoutMs` passes first. */
  async nth(index: number, timeoutMs: number): Promise<PeerAddress | undefined> {
    const deadline = this.clock.now() + timeoutMs
    while (this.found.length <= index && this.ended === undefined) {
      const remaining = deadline - this.clock.now()
      if (remaining <= 0) return undefined
      await this.changed.wait({ timeoutMs: remaining })
    }
    return this.found[index]
  }
}
