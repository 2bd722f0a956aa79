import { peerKey, type PeerAddress, type Router } from './router.js'

/** Shared state of in-memory routers, standing in for the DHT in unit tests. */
export class MemoryRoutingNetwork {
  readonly records = new Map<string, Map<string, PeerAddress>>()

  router(self: PeerAddress): MemoryRouter {
    return new MemoryRouter(this, self)
  }
}

export class MemoryRouter implements Router {
  private readonly keys = new Set<string>()

  constructor(private readonly network: MemoryRoutingNetwork, private readonly self: PeerAddress) {}

  ready(): boolean {
    return true
  }

  async *lookup(key: string, signal: AbortSignal): AsyncIterable<PeerAddress> {
    for (const peer of this.network.records.get(key)?.values() ?? []) {
      if (signal.aborted) return
      if (peerKey(peer) !== peerKey(this.self)) yield peer
    }
  }

  advertise(keys: Iterable<string>): void {
    for (const key of keys) {
      this.keys.add(key)
      let holders = this.network.records.get(key)
      if (!holders) this.network.records.set(key, (holders = new Map()))
      holders.set(peerKey(this.self), this.self)
    }
  }

  withdraw(keys: Iterable<string>): void {
    for (const key of keys) {
      this.keys.delete(key)
      this.network.records.get(key)?.delete(peerKey(this.self))
    }
  }

  advertisedKeys(): ReadonlySet<string> {
    return this.keys
  }
}
