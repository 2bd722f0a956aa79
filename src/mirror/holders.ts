import type { PeerAddress, Router } from '../routing/router.js'

/**
 * A DHT lookup running in the background: holders are kept in the order found, and callers
 * wait for the n-th one with a deadline. Stops when the lookup completes or `signal` aborts.
 */
export class HolderSearch {
  readonly found: PeerAddress[] = []
  private finished = false
  private readonly waiters = new Set<() => void>()

  constructor(router: Router, key: string, signal: AbortSignal) {
    void (async () => {
      try {
        for await (const peer of router.lookup(key, signal)) {
          this.found.push(peer)
          this.wake()
        }
      } catch {
        // a failed lookup just finds nobody
      } finally {
        this.finished = true
        this.wake()
      }
    })()
  }

  get done(): boolean {
    return this.finished
  }

  /** The holder at `index` (0 = first), or undefined if the lookup ends or `timeoutMs` passes first. */
  async nth(index: number, timeoutMs: number): Promise<PeerAddress | undefined> {
    const deadline = Date.now() + timeoutMs
    while (this.found.length <= index && !this.finished) {
      const remaining = deadline - Date.now()
      if (remaining <= 0) return undefined
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer)
          this.waiters.delete(done)
          resolve()
        }
        const timer = setTimeout(done, remaining)
        this.waiters.add(done)
      })
    }
    return this.found[index]
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter()
  }
}
