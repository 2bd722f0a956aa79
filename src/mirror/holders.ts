import type { PeerAddress, Router } from '../routing/router.js'
import type { SignalOptions } from '../util/abort.js'
import { systemClock, type Clock } from '../util/clock.js'
import { Wakeup } from '../util/wakeup.js'

/**
 * A DHT lookup running in the background: holders are kept in the order found, and callers
 * wait for the n-th one with a deadline. Stops when the lookup completes or `signal` aborts.
 */
export class HolderSearch {
  readonly found: PeerAddress[] = []
  private finished = false
  private readonly clock: Clock
  private readonly changed: Wakeup

  constructor(router: Router, key: string, options: SignalOptions & { clock?: Clock } = {}) {
    this.clock = options.clock ?? systemClock
    const changed = this.changed = new Wakeup(this.clock)
    void (async () => {
      try {
        for await (const peer of router.lookup(key, { signal: options.signal })) {
          this.found.push(peer)
          changed.notify()
        }
      } catch {
        // a failed lookup just finds nobody
      } finally {
        this.finished = true
        changed.notify()
      }
    })()
  }

  get done(): boolean {
    return this.finished
  }

  /** The holder at `index` (0 = first), or undefined if the lookup ends or `timeoutMs` passes first. */
  async nth(index: number, timeoutMs: number): Promise<PeerAddress | undefined> {
    const deadline = this.clock.now() + timeoutMs
    while (this.found.length <= index && !this.finished) {
      const remaining = deadline - this.clock.now()
      if (remaining <= 0) return undefined
      await this.changed.wait({ timeoutMs: remaining })
    }
    return this.found[index]
  }
}
