import { systemClock, type Clock } from '../util/clock.js'

/** Messages stamped further than this from this node's clock are refused. */
export const DEFAULT_REPLAY_WINDOW_MS = 2 * 60_000
export const DEFAULT_MAX_NONCES = 200_000

/**
 * Refuses an authenticated message seen before: its timestamp must be within the window and
 * its nonce new. Nonces are remembered for the window (bounded; the oldest go first).
 */
export class ReplayGuard {
  private readonly seen = new Map<string, number>()
  private readonly windowMs: number
  private readonly maxNonces: number

  constructor(private readonly clock: Clock = systemClock, init: { windowMs?: number; maxNonces?: number } = {}) {
    this.windowMs = init.windowMs ?? DEFAULT_REPLAY_WINDOW_MS
    this.maxNonces = init.maxNonces ?? DEFAULT_MAX_NONCES
  }

  /** Why the message is refused, or undefined if it is fresh (and is now remembered). */
  check(timestampMs: number, nonce: string): string | undefined {
    const now = this.clock.now()
    if (!Number.isFinite(timestampMs) || Math.abs(now - timestampMs) > this.windowMs) return 'timestamp outside the replay window'
    if (this.seen.has(nonce)) return 'replayed nonce'
    this.seen.set(nonce, now + this.windowMs * 2)
    this.expire(now)
    return undefined
  }

  private expire(now: number): void {
    for (const [nonce, until] of this.seen) {
      if (until > now && this.seen.size <= this.maxNonces) break
      this.seen.delete(nonce)
    }
  }
}
