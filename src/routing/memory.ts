import { setTimeout as sleep } from 'node:timers/promises'
import type { SignalOptions } from '../util/abort.js'
import type { Service } from '../util/service.js'
import { peerKey, type PeerAddress, type Router } from './router.js'

/** Shared state of in-memory routers, standing in for the DHT in unit tests. */
export class MemoryRoutingNetwork {
  readonly records = new Map<string, Map<string, PeerAddress>>()

  /** `lookupDelayMs`: how long each lookup takes before it answers, as a DHT's round trips do. */
  constructor(readonly lookupDelayMs = 0) {}

  router(self: PeerAddress): MemoryRouter {
    return new MemoryRouter(this, self)
  }
}

export class MemoryRouter implements Router, Service {
  private readonly keys = new Set<string>()
  /** Lookups started, by key (what the tests of coalescing count). */
  readonly lookups = new Map<string, number>()

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
    this.lookups.set(key, (this.lookups.get(key) ?? 0) + 1)
    if (this.network.lookupDelayMs > 0) await sleep(this.network.lookupDelayMs, undefined, { signal: options.signal }).catch(() => undefined)
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
