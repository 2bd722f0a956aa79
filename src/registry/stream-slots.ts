import { UnavailableError } from '../oci/errors.js'
import type { SignalOptions } from '../util/abort.js'
import { systemClock, type Clock } from '../util/clock.js'

export const DEFAULT_MAX_BLOB_STREAMS = 64
/** One client (an address) may hold at most this many blob streams, so it cannot take every slot. */
export const DEFAULT_MAX_BLOB_STREAMS_PER_CLIENT = 16

/** How long a request waits for a free slot before it is refused with 503. */
export const DEFAULT_SLOT_WAIT_MS = 5_000
/** Requests waiting for a slot, at most this many times the slots; beyond, 503 at once. */
const WAITERS_PER_SLOT = 4

interface Waiter { client: string; grant: (release: () => void) => void }

/**
 * Slots for blob bodies being streamed, over all clients and per client address. A request
 * beyond either cap waits, first come first served, for a slot (bounded, cancellable); one that
 * still has none, or finds too many waiting, is refused with 503: containerd then goes
 * upstream, a peer asks another holder.
 */
export class StreamSlots {
  private total = 0
  private readonly perClient = new Map<string, number>()
  private readonly waiters: Waiter[] = []

  constructor(private readonly max = DEFAULT_MAX_BLOB_STREAMS, private readonly maxPerClient = Math.min(max, DEFAULT_MAX_BLOB_STREAMS_PER_CLIENT),
    private readonly clock: Clock = systemClock) {}

  /** A slot for `client`, waiting up to `waitMs` for one; the returned function gives it back (twice is harmless). */
  async acquire(client: string, options: SignalOptions & { waitMs?: number } = {}): Promise<() => void> {
    if (this.fits(client) && this.waiters.length === 0) return this.take(client)
    if (this.waiters.length >= this.max * WAITERS_PER_SLOT) throw this.refusal(client)
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { client, grant: (release) => { settle(); resolve(release) } }
      const giveUp = (err: unknown): void => {
        settle()
        reject(err)
      }
      const onAbort = (): void => giveUp(options.signal!.reason)
      const cancelTimer = this.clock.schedule(options.waitMs ?? DEFAULT_SLOT_WAIT_MS, () => giveUp(this.refusal(client)))
      const settle = (): void => {
        cancelTimer()
        options.signal?.removeEventListener('abort', onAbort)
        const at = this.waiters.indexOf(waiter)
        if (at >= 0) this.waiters.splice(at, 1)
      }
      if (options.signal?.aborted) return giveUp(options.signal.reason)
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.waiters.push(waiter)
    })
  }

  private fits(client: string): boolean {
    return this.total < this.max && (this.perClient.get(client) ?? 0) < this.maxPerClient
  }

  private refusal(client: string): UnavailableError {
    const held = this.perClient.get(client) ?? 0
    return held >= this.maxPerClient
      ? new UnavailableError(`this client already has ${held} blob streams in progress, the most one client may have`)
      : new UnavailableError(`${this.total} blob streams are in progress, the most this node serves at once; try again later`)
  }

  /** Hands freed slots to the waiters that fit, oldest first. */
  private grantWaiting(): void {
    for (const waiter of [...this.waiters]) {
      if (this.fits(waiter.client)) waiter.grant(this.take(waiter.client))
    }
  }

  get active(): number {
    return this.total
  }

  /** Takes a slot for `client` now, or throws 503; the returned function gives it back (calling it twice is harmless). */
  take(client: string): () => void {
    if (!this.fits(client)) throw this.refusal(client)
    const held = this.perClient.get(client) ?? 0
    this.total++
    this.perClient.set(client, held + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.total--
      const left = (this.perClient.get(client) ?? 1) - 1
      if (left > 0) this.perClient.set(client, left)
      else this.perClient.delete(client)
      this.grantWaiting()
    }
  }
}
