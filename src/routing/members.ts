import type { Logger } from 'pino'
import { systemClock, type Clock } from '../util/clock.js'
import { peerKey, type PeerAddress, type Router } from './router.js'

/** The key every node announces in the DHT: its holders are the cluster's nodes. */
export const MEMBERS_KEY = 'shoal:nodes'
export const DEFAULT_MEMBERS_REFRESH_MS = 15_000
/** While no other node is known (the DHT is still joining), the lookup is repeated this often. */
const EMPTY_REFRESH_MS = 2_000
/** One lookup of the members may take this long; what it found by then counts. */
const LOOKUP_TIMEOUT_MS = 5_000

/**
 * The nodes of the cluster as the DHT knows them, looked up again every `refreshMs`: every node
 * announces MEMBERS_KEY, so its holders are the nodes. A node missing from the list (just
 * started, or not found in time) only moves others' places in a ranking; nothing waits on it.
 */
export class ClusterMembers {
  private known = new Map<string, PeerAddress>()
  private cancel: (() => void) | undefined
  private readonly stopped = new AbortController()
  private readonly clock: Clock

  constructor(private readonly components: { router: Router; announce: (key: string) => void; logger: Logger; clock?: Clock },
    private readonly init: { refreshMs?: number } = {}) {
    this.clock = components.clock ?? systemClock
  }

  /** The other nodes found by the last lookup (never this node), by `host:port`. */
  list(): Map<string, PeerAddress> {
    return new Map(this.known)
  }

  start(): void {
    if (this.cancel || this.stopped.signal.aborted) return
    this.components.announce(MEMBERS_KEY)
    const round = (): void => {
      void this.refresh().finally(() => {
        if (this.stopped.signal.aborted) return
        this.cancel = this.clock.schedule(this.known.size === 0 ? EMPTY_REFRESH_MS : this.init.refreshMs ?? DEFAULT_MEMBERS_REFRESH_MS, round)
      })
    }
    this.cancel = () => {}
    round()
  }

  stop(): void {
    this.stopped.abort()
    this.cancel?.()
    this.cancel = undefined
  }

  private async refresh(): Promise<void> {
    const found = new Map<string, PeerAddress>()
    const timeout = new AbortController()
    const cancel = this.clock.schedule(LOOKUP_TIMEOUT_MS, () => timeout.abort())
    const signal = AbortSignal.any([this.stopped.signal, timeout.signal])
    try {
      for await (const peer of this.components.router.lookup(MEMBERS_KEY, { signal })) found.set(peerKey(peer), peer)
    } catch (err) {
      this.components.logger.debug({ err }, 'looking up the cluster\'s nodes failed')
    } finally {
      cancel()
    }
    // A lookup cut short by its timeout keeps what the previous one found besides.
    this.known = signal.aborted ? new Map([...this.known, ...found]) : found
  }
}
