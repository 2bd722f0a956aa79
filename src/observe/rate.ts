import { systemClock, type Clock } from '../util/clock.js'

/** Bytes per second over the last few seconds, from per-second buckets. */
export class RateMeter {
  private readonly buckets: number[]
  private current = 0
  private currentSecond: number

  constructor(private readonly clock: Clock = systemClock, private readonly windowSeconds = 5) {
    this.buckets = new Array<number>(windowSeconds).fill(0)
    this.currentSecond = Math.floor(clock.now() / 1000)
  }

  add(bytes: number, now = this.clock.now()): void {
    this.roll(now)
    this.current += bytes
  }

  rate(now = this.clock.now()): number {
    this.roll(now)
    const past = this.buckets.reduce((sum, value) => sum + value, 0)
    return Math.round(past / this.windowSeconds)
  }

  private roll(now: number): void {
    const second = Math.floor(now / 1000)
    if (second === this.currentSecond) return
    const elapsed = Math.min(second - this.currentSecond, this.windowSeconds)
    for (let i = 0; i < elapsed; i++) {
      this.buckets.shift()
      this.buckets.push(i === 0 ? this.current : 0)
    }
    this.current = 0
    this.currentSecond = second
  }
}
