import { systemClock, type Clock } from './clock.js'

export interface WaitOptions {
  /** Give up waiting after this long (the wait resolves, it does not throw). */
  timeoutMs?: number
  signal?: AbortSignal
}

/**
 * The one way an async loop sleeps until something it watches changes: `notify()` wakes
 * every current waiter. A waiter re-checks its condition after each wake, so a wake is a hint,
 * never a promise that the condition holds.
 */
export class Wakeup {
  private readonly waiters = new Set<() => void>()

  constructor(private readonly clock: Clock = systemClock) {}

  notify(): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  /** Resolves on the next notify(), when `timeoutMs` has passed or when `signal` aborts, whichever comes first. */
  wait(options: WaitOptions = {}): Promise<void> {
    const { timeoutMs, signal } = options
    if (signal?.aborted || (timeoutMs !== undefined && timeoutMs <= 0)) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        cancelTimer()
        this.waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const cancelTimer = timeoutMs === undefined ? () => {} : this.clock.schedule(timeoutMs, done)
      this.waiters.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }
}
