import type { Clock } from './clock.js'

/**
 * The time one request has left to be answered, on the injected clock. Its signal aborts when
 * the time is up (with the reason `expired()` gives) or when the request's own signal aborts;
 * every wait on the request's path is bounded by what remains instead of a timer of its own.
 * `release()` stops the clock (the answer is out) without aborting: a body still streaming
 * lives on with the request.
 */
export class Deadline {
  readonly endsAt: number
  private readonly controller = new AbortController()
  private readonly cancelTimer: () => void

  constructor(private readonly clock: Clock, totalMs: number, expired: () => Error, parent?: AbortSignal) {
    this.endsAt = clock.now() + totalMs
    this.cancelTimer = clock.schedule(totalMs, () => this.controller.abort(expired()))
    const onParentAbort = (): void => this.controller.abort(parent!.reason)
    if (parent?.aborted) onParentAbort()
    parent?.addEventListener('abort', onParentAbort, { once: true })
  }

  get signal(): AbortSignal {
    return this.controller.signal
  }

  remainingMs(): number {
    return Math.max(0, this.endsAt - this.clock.now())
  }

  /**
   * How long one step may take when `stepsLeft` steps (it included) may still have to run: at
   * most `ms`, and no more than an equal share of what remains, so a fallback keeps its time.
   */
  share(ms: number, stepsLeft = 1): number {
    return Math.min(ms, Math.floor(this.remainingMs() / Math.max(1, stepsLeft)))
  }

  /** A signal that aborts after `ms` (with `reason()`) or with the deadline, and the function that releases its timer. */
  within(ms: number, reason: () => Error): { signal: AbortSignal; release: () => void } {
    const step = new AbortController()
    const cancel = this.clock.schedule(ms, () => step.abort(reason()))
    const onAbort = (): void => step.abort(this.signal.reason)
    if (this.signal.aborted) onAbort()
    this.signal.addEventListener('abort', onAbort, { once: true })
    return {
      signal: step.signal,
      release: () => {
        cancel()
        this.signal.removeEventListener('abort', onAbort)
      },
    }
  }

  /** The answer is out: no more expiry; the request's own signal still ends what runs on. */
  release(): void {
    this.cancelTimer()
  }
}
