import { UnavailableError } from '../oci/errors.js'

export const DEFAULT_MAX_BLOB_STREAMS = 64
/** One client (an address) may hold at most this many blob streams, so it cannot take every slot. */
export const DEFAULT_MAX_BLOB_STREAMS_PER_CLIENT = 16

/**
 * Slots for blob bodies being streamed, over all clients and per client address. A request
 * beyond either cap is refused with 503 at once: containerd then goes upstream, a peer asks
 * another holder.
 */
export class StreamSlots {
  private total = 0
  private readonly perClient = new Map<string, number>()

  constructor(private readonly max = DEFAULT_MAX_BLOB_STREAMS, private readonly maxPerClient = Math.min(max, DEFAULT_MAX_BLOB_STREAMS_PER_CLIENT)) {}

  get active(): number {
    return this.total
  }

  /** Takes a slot for `client`; the returned function gives it back (calling it twice is harmless). */
  take(client: string): () => void {
    const held = this.perClient.get(client) ?? 0
    if (this.total >= this.max) throw new UnavailableError(`${this.total} blob streams are in progress, the most this node serves at once; try again later`)
    if (held >= this.maxPerClient) throw new UnavailableError(`this client already has ${held} blob streams in progress, the most one client may have`)
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
    }
  }
}
