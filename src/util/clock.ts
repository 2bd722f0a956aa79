/** Time as components see it; tests pass a clock they advance themselves. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
  /** Runs `callback` once after `ms`; the returned function cancels it. */
  schedule(ms: number, callback: () => void): () => void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(ms, callback) {
    const timer = setTimeout(callback, Math.max(0, ms))
    return () => clearTimeout(timer)
  },
}

/**
 * Runs `task` every `ms` on the clock, each run timed from the end of the one before (two never
 * overlap); the returned function stops it, and calling it twice is harmless.
 */
export function every(clock: Clock, ms: number, task: () => Promise<void>): () => void {
  let stopped = false
  let cancel = (): void => {}
  const arm = (): void => {
    cancel = clock.schedule(ms, () => {
      void task().finally(() => {
        if (!stopped) arm()
      })
    })
  }
  arm()
  return () => {
    stopped = true
    cancel()
  }
}
