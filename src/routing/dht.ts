import DHT from 'bittorrent-dht'
import type { Logger } from 'pino'
import { localHosts, type DialAddress, type HostPort } from '../net/address.js'
import type { Metrics } from '../observe/metrics.js'
import type { Bootstrap } from './bootstrap.js'
import type { ClusterKey } from '../net/cluster-key.js'
import { ReplayGuard } from '../net/replay-guard.js'
import { admitNodesThatAnswer, answerGetPeersWithNodes, answerWithdrawals, assertDhtPinned, changeStoredRecord, replaceRecordStore, sendWithdrawal } from './dht-internals.js'
import { guardedKrpcSocket } from './krpc-guard.js'
import { RecordStore } from './record-store.js'
import { DhtDrops, routingTable, type DhtStats } from './dht-stats.js'
import { DEFAULT_ANNOUNCE_LIMIT, DEFAULT_QUERY_LIMIT, SourceLimits } from './source-limits.js'
import { peerKey, routingTarget, type PeerAddress, type Router } from './router.js'
import type { SignalOptions } from '../util/abort.js'
import { Wakeup } from '../util/wakeup.js'
import { ShoalError } from '../util/errors.js'

/** Records live 2/3–4/3 of this at other nodes (bittorrent-dht's maxAge). */
export const DEFAULT_RECORD_TTL_MS = 30 * 60_000
export const DEFAULT_REANNOUNCE_MS = 10 * 60_000
export const DEFAULT_BOOTSTRAP_REFRESH_MS = 10_000
/** While the routing table is empty, bootstrap peers are retried this often. */
export const EMPTY_TABLE_RETRY_MS = 1_000
export const DEFAULT_QUERY_TIMEOUT_MS = 1000
/** On stop, how long the node spends asking others to drop its records. */
export const DEFAULT_WITHDRAW_TIMEOUT_MS = 2_000
const ANNOUNCE_CONCURRENCY = 16
/**
 * Once the routing table is this many times its size at the last announce of everything, the
 * nodes closest to our keys are likely others than those storing our records (a lookup asks only
 * the closest): everything is announced again, once the joins have settled.
 */
const TABLE_GROWTH_FACTOR = 2
const TABLE_GROWTH_SETTLE_MS = 1_000

export interface DhtRouterInit {
  /** UDP address of the DHT socket (`--p2p-addr`). */
  listen: HostPort
  /** Port put into our records: this node's HTTP API (known once its server listens). */
  announcePort: () => number
  recordTtlMs?: number
  reannounceIntervalMs?: number
  bootstrapRefreshMs?: number
  queryTimeoutMs?: number
  withdrawTimeoutMs?: number
  /** Every datagram sealed with it, and only sealed ones accepted; none: an open DHT. */
  clusterKey?: ClusterKey | undefined
}

export class DhtStartError extends ShoalError {
  constructor(address: HostPort, cause: Error) {
    super(`cannot open the DHT socket on udp ${address.host ?? '0.0.0.0'}:${address.port}`, { cause })
  }
}

/** A private mainline DHT (bittorrent-dht) bootstrapped only from our own nodes. */
export class DhtRouter implements Router {
  private dht: DHT | undefined
  private readonly keys = new Set<string>()
  private readonly pending = new Set<string>()
  private draining = false
  /** Announces of the batch being sent now. */
  private announcing = 0
  private bootstrapPeers: DialAddress[] = []
  private lastBootstrap: Date | undefined
  private timers: NodeJS.Timeout[] = []
  private rebootstrapTimer: NodeJS.Timeout | undefined
  private announcesSent = 0
  private announceFailures = 0
  private readonly drops: DhtDrops
  private readonly records: RecordStore
  private forgotten = 0
  private withdrawn = 0
  private tableWasEmpty = true
  /** Routing table size when everything was last announced. */
  private announcedAtTableSize = 0
  private growthTimer: NodeJS.Timeout | undefined
  private readonly failed = new Set<string>()
  private readonly selfHosts: Set<string>

  constructor(private readonly components: { bootstrap: Bootstrap; logger: Logger; metrics: Metrics }, private readonly init: DhtRouterInit) {
    this.selfHosts = localHosts(init.listen)
    this.records = new RecordStore({ maxAgeMs: init.recordTtlMs ?? DEFAULT_RECORD_TTL_MS })
    this.drops = new DhtDrops(components.logger, components.metrics)
  }

  async start(): Promise<void> {
    if (this.dht) return
    assertDhtPinned()
    await this.refreshBootstrapPeers()
    const dht = new DHT({
      bootstrap: this.bootstrapPeers.map((peer) => `${peer.host}:${peer.port}`),
      maxAge: this.init.recordTtlMs ?? DEFAULT_RECORD_TTL_MS,
      timeout: this.init.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS,
      socket: guardedKrpcSocket({
        key: this.init.clusterKey, replay: new ReplayGuard(undefined, { windowMs: 60_000, maxNonces: 100_000 }), limits: new SourceLimits({ query: DEFAULT_QUERY_LIMIT, announce: DEFAULT_ANNOUNCE_LIMIT }),
        onDrop: (reason, from, kind) => this.drops.record(reason, from, kind),
      }),
    })
    replaceRecordStore(dht, this.records)
    admitNodesThatAnswer(dht)
    answerGetPeersWithNodes(dht)
    // bittorrent-dht binds 0.0.0.0:random by itself unless listen() is called in this same tick.
    await new Promise<void>((resolve, reject) => {
      dht.once('error', (err: Error) => reject(new DhtStartError(this.init.listen, err)))
      dht.listen(this.init.listen.port, this.init.listen.host, () => resolve())
    })
    dht.on('error', (err: Error) => this.components.logger.error({ err }, 'DHT socket error'))
    dht.on('warning', (err: Error) => this.components.logger.debug({ err }, 'DHT warning'))
    dht.on('node', () => this.onNode())
    answerWithdrawals(dht, (peer) => {
      this.withdrawn++
      this.components.logger.debug({ peer: peerKey(peer) }, 'a holder withdrew its record')
    })
    this.dht = dht
    this.timers = [setInterval(() => this.announceEverything(), this.init.reannounceIntervalMs ?? DEFAULT_REANNOUNCE_MS)]
    this.timers[0]!.unref()
    this.scheduleRebootstrap()
    this.components.logger.info({ address: dht.address(), bootstrap: this.bootstrapPeers.map((peer) => `${peer.host}:${peer.port}`) }, 'DHT listening')
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer)
    clearTimeout(this.rebootstrapTimer)
    clearTimeout(this.growthTimer)
    this.growthTimer = undefined
    this.timers = []
    const dht = this.dht
    this.dht = undefined
    if (!dht) return
    await this.withdrawAnnounced(dht, this.init.withdrawTimeoutMs ?? DEFAULT_WITHDRAW_TIMEOUT_MS)
    await new Promise<void>((resolve) => dht.destroy(() => resolve()))
  }

  ready(): boolean {
    return this.dht !== undefined && (this.dht.nodes.count() > 0 || this.bootstrapPeers.length === 0)
  }

  async *lookup(key: string, options: SignalOptions = {}): AsyncIterable<PeerAddress> {
    const { signal } = options
    const dht = this.dht
    if (!dht || signal?.aborted) return
    const target = routingTarget(key)
    const queue: PeerAddress[] = []
    const seen = new Set<string>()
    let complete = false
    const changed = new Wakeup()
    const onPeer = (peer: { host: string; port: number }, infoHash: Uint8Array): void => {
      if (!target.equals(infoHash) || this.isSelf(peer) || seen.has(peerKey(peer))) return
      seen.add(peerKey(peer))
      queue.push({ host: peer.host, port: peer.port })
      changed.notify()
    }
    dht.on('peer', onPeer)
    const cancel = dht.lookup(target, () => {
      complete = true
      changed.notify()
    })
    try {
      for (;;) {
        const next = queue.shift()
        if (next) yield next
        else if (complete || signal?.aborted) return
        else await changed.wait({ signal })
      }
    } finally {
      cancel()
      dht.off('peer', onPeer)
    }
  }

  advertise(keys: Iterable<string>): void {
    const fresh = [...keys].filter((key) => !this.keys.has(key))
    for (const key of fresh) this.keys.add(key)
    this.components.metrics.advertisedKeys.set(this.keys.size)
    this.schedule(fresh)
  }

  withdraw(keys: Iterable<string>): void {
    for (const key of keys) {
      if (this.keys.has(key)) this.storeOwnRecord(key, 'remove')
      this.keys.delete(key)
      this.pending.delete(key)
      this.failed.delete(key)
    }
    this.components.metrics.advertisedKeys.set(this.keys.size)
  }

  /**
   * This node answers get_peers for what it holds itself, not only for what others announced to
   * it: a record placed only at a node that then froze or left would otherwise hide a live holder
   * until the next re-announce.
   */
  private storeOwnRecord(key: string, change: 'add' | 'remove'): void {
    const self = this.init.listen.host
    if (this.dht && self) changeStoredRecord(this.dht, routingTarget(key), { host: self, port: this.init.announcePort() }, change)
  }

  /** Removes the record from this node's store, so lookups that reach this node no longer get it. */
  forget(key: string, peer: PeerAddress): void {
    if (this.dht && changeStoredRecord(this.dht, routingTarget(key), peer, 'remove')) this.forgotten++
  }

  /** Asks the nodes that store this node's records to drop them, for at most `timeoutMs` (0: not at all). */
  private async withdrawAnnounced(dht: DHT, timeoutMs: number): Promise<void> {
    if (timeoutMs <= 0) return
    const signal = AbortSignal.timeout(timeoutMs)
    const keys = [...this.keys]
    for (let start = 0; start < keys.length && !signal.aborted; start += ANNOUNCE_CONCURRENCY) {
      await Promise.all(keys.slice(start, start + ANNOUNCE_CONCURRENCY).map((key) => sendWithdrawal(dht, routingTarget(key), this.init.announcePort(), signal)))
    }
  }

  advertisedKeys(): ReadonlySet<string> {
    return this.keys
  }

  stats(): DhtStats {
    return {
      nodes: this.dht?.nodes.count() ?? 0,
      bootstrapPeers: this.bootstrapPeers.map((peer) => `${peer.host}:${peer.port}`),
      lastBootstrap: this.lastBootstrap?.toISOString() ?? null,
      announcedKeys: this.keys.size,
      announcesSent: this.announcesSent,
      announcesPending: this.pending.size + this.announcing,
      announceFailures: this.announceFailures,
      ...this.drops.counts(),
      storedRecords: this.records.size,
      recordSources: this.records.sources(5),
      forgottenRecords: this.forgotten,
      withdrawnRecords: this.withdrawn,
      table: routingTable(this.dht),
    }
  }

  private schedule(keys: Iterable<string>): void {
    for (const key of keys) this.pending.add(key)
    if (!this.draining && this.pending.size > 0) void this.drain()
  }

  private async drain(): Promise<void> {
    this.draining = true
    try {
      while (this.pending.size > 0 && this.dht) {
        const batch = [...this.pending].slice(0, ANNOUNCE_CONCURRENCY)
        for (const key of batch) this.pending.delete(key)
        const announcing = batch.filter((key) => this.keys.has(key))
        this.announcing = announcing.length
        await Promise.all(announcing.map((key) => this.announce(key)))
      }
    } finally {
      this.draining = false
      this.announcing = 0
    }
  }

  /**
   * A fresh lookup, then the announce: bittorrent-dht would otherwise reuse a cached lookup
   * table for up to 5 minutes, empty if it was made before this node knew any other.
   */
  private announce(key: string): Promise<void> {
    const dht = this.dht
    if (!dht) return Promise.resolve()
    const target = routingTarget(key)
    return new Promise((resolve) => {
      dht.lookup(target, () => {
        if (this.dht !== dht) return resolve()
        this.storeOwnRecord(key, 'add')
        dht.announce(target, this.init.announcePort(), (err) => {
          if (err) {
            this.announceFailures++
            this.failed.add(key)
          } else {
            this.announcesSent++
          }
          resolve()
        })
      })
    })
  }

  private onNode(): void {
    if (this.tableWasEmpty) {
      // The first node after an empty table: everything announced so far reached nobody.
      this.tableWasEmpty = false
      this.announceEverything()
      return
    }
    const size = this.dht?.nodes.count() ?? 0
    if (this.growthTimer || size < TABLE_GROWTH_FACTOR * Math.max(1, this.announcedAtTableSize)) return
    this.growthTimer = setTimeout(() => {
      this.growthTimer = undefined
      this.announceEverything()
    }, TABLE_GROWTH_SETTLE_MS)
    this.growthTimer.unref()
  }

  private announceEverything(): void {
    this.announcedAtTableSize = this.dht?.nodes.count() ?? 0
    this.schedule(this.keys)
  }

  private scheduleRebootstrap(): void {
    const empty = (this.dht?.nodes.count() ?? 0) === 0 && this.bootstrapPeers.length > 0
    const delay = empty ? Math.min(EMPTY_TABLE_RETRY_MS, this.init.bootstrapRefreshMs ?? DEFAULT_BOOTSTRAP_REFRESH_MS) : this.init.bootstrapRefreshMs ?? DEFAULT_BOOTSTRAP_REFRESH_MS
    this.rebootstrapTimer = setTimeout(() => {
      void this.rebootstrap().finally(() => {
        if (this.dht) this.scheduleRebootstrap()
      })
    }, delay)
    this.rebootstrapTimer.unref()
  }

  private async rebootstrap(): Promise<void> {
    const dht = this.dht
    if (!dht) return
    if (dht.nodes.count() === 0) this.tableWasEmpty = true
    if (this.failed.size > 0 && dht.nodes.count() > 0) {
      const retry = [...this.failed]
      this.failed.clear()
      this.schedule(retry)
    }
    await this.refreshBootstrapPeers()
    const known = new Set(dht.nodes.toArray().map((node) => `${node.host}:${node.port}`))
    for (const peer of this.bootstrapPeers) {
      if (!known.has(`${peer.host}:${peer.port}`)) dht.addNode({ host: peer.host, port: peer.port })
    }
  }

  private async refreshBootstrapPeers(): Promise<void> {
    try {
      const addresses = await this.components.bootstrap.addresses()
      this.bootstrapPeers = addresses.filter((address) => !(address.port === this.init.listen.port && this.selfHosts.has(address.host)))
      this.lastBootstrap = new Date()
    } catch (err) {
      this.components.logger.warn({ kind: this.components.bootstrap.kind, err }, 'bootstrap lookup failed; keeping the previous peers')
    }
  }

  private isSelf(peer: { host: string; port: number }): boolean {
    return peer.port === this.init.announcePort() && this.selfHosts.has(peer.host)
  }
}
