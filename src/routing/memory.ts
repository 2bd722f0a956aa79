import type { SignalOptions } from '../util/abort.js'
import type { Service } from '../util/service.js'
import { peerKey, type PeerAddress, type Router } from './router.js'

/** Shared state of in-memory routers, standing in for the DHT in unit tests. */
export class MemoryRoutingNetwork {
  readonly records = new Map<string, Map<string, PeerAddress>>()

  router(self: PeerAddress): MemoryRouter {
    return new MemoryRouter(this, self)
  }
}

export class MemoryRouter implements Router, Service {
  private readonly keys = new Set<string>()

  constructor(private readonly network: MemoryRoutingNetwork, private readonly self: PeerAddress) {}

  start(): void {}

  /** Withdraws everything: a stopped node holds nothing as far as the others can tell. */
  stop(): void {
    this.withdraw([...this.keys])
  }

  ready(): boolean {
    return true
  }

  async *lookup(key: string, options: SignalOptions = {}): AsyncIterable<PeerAddress> {
    for (const peer of this.network.records.get(key)?.values() ?? []) {
      if (options.signal?.aborted) return
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

  forget(key: string, peer: PeerAddress): void {
    this.network.records.get(key)?.delete(peerKey(peer))
  }

  advertisedKeys(): ReadonlySet<string> {
    return this.keys
  }
}
