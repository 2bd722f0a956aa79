import type { Clock } from '../../src/util/clock.js'

/** A clock that only moves when a test advances it; timers fire in due order, synchronously. */
export class ManualClock implements Clock {
  private timers: { at: number; callback: () => void; id: number }[] = []
  private nextId = 0

  constructor(private current = 1_700_000_000_000) {}

  now(): number {
    return this.current
  }

  schedule(ms: number, callback: () => void): () => void {
    const id = this.nextId++
    this.timers.push({ at: this.current + Math.max(0, ms), callback, id })
    return () => { this.timers = this.timers.filter((timer) => timer.id !== id) }
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    const end = this.current + ms
    for (;;) {
      const due = this.timers.filter((timer) => timer.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0]
      if (!due) break
      this.timers = this.timers.filter((timer) => timer !== due)
      this.current = Math.max(this.current, due.at)
      due.callback()
    }
    this.current = end
  }
}
