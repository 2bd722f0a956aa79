import { systemClock, type Clock } from '../util/clock.js'
import { Wakeup } from '../util/wakeup.js'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import { peerKey, type PeerAddress } from '../routing/router.js'
import type { Download } from '../swarm/download.js'
import type { Metainfo } from '../swarm/metainfo.js'
import type { MetainfoCache } from '../swarm/metainfo-cache.js'
import type { Swarm } from '../swarm/swarm.js'
import type { HolderHealth } from './holder-health.js'
import type { NodeReputation } from '../net/node-reputation.js'
import type { HolderPool, HolderPools } from './holder-pool.js'
import type { PeerClient } from './peer-client.js'

export const DISCOVERY_INTERVAL_MS = 2_000
/**
 * The first discovery rounds, sooner: requesters that start together announce milliseconds
 * after the lookups that started their downloads, and until they see one another each takes
 * from the holders pieces another also takes (the holder uploads them twice).
 */
export const FIRST_DISCOVERY_ROUNDS_MS = [250, 500, 1_000] as const
const METAINFO_FANOUT = 8
/** Digests whose refused infohashes are remembered. */
const MAX_REJECTED = 1024

/** What one peer offers for a blob's swarm: the address of its wire, the infohash it serves, and the metainfo if it holds the blob. */
interface Offer {
  peer: PeerAddress
  wireAddress: PeerAddress
  infoHash: string
  metainfo?: Metainfo
}

/** The metainfo a download uses, the wire addresses to dial first, and who supplied it (none: computed here). */
interface Chosen {
  metainfo: Metainfo
  wireAddresses: PeerAddress[]
  supplier?: PeerAddress
}

/** Keys announced for as long as a download runs, so later requesters swarm with this node. */
export interface TransientAdvertiser {
  hold(key: string): void
  release(key: string): void
}

export interface SwarmJoinComponents {
  pools: HolderPools
  peers: PeerClient
  swarm: Swarm
  metainfo: MetainfoCache
  advertiser: TransientAdvertiser
  health: HolderHealth
  logger: Logger
  /** Learns each holder's wire address as an alias of the node (one name, one ban list). */
  reputation?: NodeReputation
  /** Times the discovery rounds. */
  clock?: Clock
}

/** Joins blob swarms: one join per digest, shared by every request for it. */
export class SwarmJoins {
  private readonly pending = new Map<Digest, Promise<Download | undefined>>()
  private readonly contacted = new Map<Digest, Set<string>>()
  private readonly rejected = new Map<Digest, Set<string>>()
  private stopped = new AbortController()

  constructor(private readonly components: SwarmJoinComponents, private readonly init: { stallMs: number }) {}

  start(): void {}

  /** Ends every discovery loop; joins started later run again. */
  stop(): void {
    this.stopped.abort()
    this.stopped = new AbortController()
  }

  /**
   * The download of `digest` (`size` bytes, as holders reported it), joined or started;
   * undefined if no holder gave metainfo for it in time.
   */
  join(digest: Digest, holders: HolderPool, size: number): Promise<Download | undefined> {
    const running = this.components.swarm.downloading(digest)
    if (running) return Promise.resolve(running)
    let join = this.pending.get(digest)
    if (!join) {
      join = this.begin(digest, holders, size).finally(() => this.pending.delete(digest))
      this.pending.set(digest, join)
    }
    return join
  }

  private async begin(digest: Digest, holders: HolderPool, size: number): Promise<Download | undefined> {
    const known = await this.components.metainfo.cached(digest)
    const first = await this.firstMetainfo(digest, holders, { known, size }).catch((err: unknown) => {
      this.contacted.delete(digest)
      throw err
    })
    if (!first) {
      this.contacted.delete(digest)
      return undefined
    }
    const download = await this.components.swarm.fetch(first.metainfo, first.wireAddresses)
    this.components.advertiser.hold(digest)
    this.blameOnMismatch(digest, download, first)
    void this.discover(digest, first.metainfo, holders)
    return download
  }

  /**
   * Metainfo is bound to the digest: the blob's own (computed or verified here) if this node
   * has it, else the first a holder gives whose length is the size holders report. A holder
   * whose metainfo contradicts either is banned; nodes still downloading only say which
   * infohash they download, and are joined when it matches.
   */
  private firstMetainfo(digest: Digest, holders: HolderPool, expect: { known: Metainfo | undefined; size: number }): Promise<Chosen | undefined> {
    return new Promise((resolve) => {
      let chosen: Chosen | undefined = expect.known && { metainfo: expect.known, wireAddresses: [] }
      const waiting: Offer[] = []
      let outstanding = 0
      let listed = false
      const settleIfDone = (): void => {
        if (listed && outstanding === 0 && !(chosen && chosen.wireAddresses.length > 0)) resolve(undefined)
      }
      const consider = (offer: Offer): void => {
        if (!this.believable(digest, offer, expect)) return
        if (chosen && offer.infoHash !== chosen.metainfo.infoHash) return
        if (chosen && chosen.wireAddresses.length > 0) {
          void this.components.swarm.fetch(chosen.metainfo, [offer.wireAddress]).catch(() => {})
          return
        }
        if (!chosen && !offer.metainfo) {
          waiting.push(offer)
          return
        }
        chosen ??= { metainfo: offer.metainfo!, wireAddresses: [], supplier: offer.peer }
        chosen.wireAddresses = [offer.wireAddress, ...waiting.filter((other) => other.infoHash === chosen!.metainfo.infoHash).map((other) => other.wireAddress)]
        resolve(chosen)
      }
      void (async () => {
        let asked = 0
        for (let index = 0; asked < METAINFO_FANOUT; index++) {
          const peer = await holders.nth(index, this.init.stallMs)
          if (!peer) break
          // A holder that failed lately is asked only when nobody better was found.
          if (holders.isBanned(peer) || (asked > 0 && holders.isSkipped(peer))) continue
          asked++
          outstanding++
          void this.ask(holders, peer).then((offer) => offer && consider(offer)).finally(() => {
            outstanding--
            settleIfDone()
          })
        }
        listed = true
        settleIfDone()
      })()
    })
  }

  /** False (and the peer banned) when what it offers contradicts the digest or the size holders report. */
  private believable(digest: Digest, offer: Offer, expect: { known: Metainfo | undefined; size: number }): boolean {
    const lie = this.rejected.get(digest)?.has(offer.infoHash) ? 'its metainfo already failed the digest'
      : offer.metainfo && offer.metainfo.length !== expect.size ? `its metainfo is ${offer.metainfo.length} bytes long, holders report ${expect.size}`
      : offer.metainfo && expect.known && offer.infoHash !== expect.known.infoHash ? 'its metainfo differs from the one computed from the blob'
      : undefined
    if (!lie) return true
    this.components.health.lied(offer.peer, digest, lie)
    return false
  }

  /** A download whose assembled blob fails its digest: the holder whose metainfo it used lied, and that infohash is refused from anyone. */
  private blameOnMismatch(digest: Digest, download: Download, chosen: Chosen): void {
    void download.verdict.then(() => {
      if (download.digestMatches !== false || !chosen.supplier) return
      const rejected = this.rejected.get(digest) ?? new Set<string>()
      rejected.add(chosen.metainfo.infoHash)
      this.rejected.set(digest, rejected)
      if (this.rejected.size > MAX_REJECTED) this.rejected.delete(this.rejected.keys().next().value as Digest)
      this.components.health.lied(chosen.supplier, digest, 'the blob assembled with its metainfo does not hash to the digest')
    })
  }

  /** The peer's offer for the pool's blob; undefined if it has none, failed or was silent (the pool records which). */
  private async ask(holders: HolderPool, peer: PeerAddress): Promise<Offer | undefined> {
    const digest = holders.key as Digest
    let contacted = this.contacted.get(digest)
    if (!contacted) this.contacted.set(digest, (contacted = new Set()))
    contacted.add(peerKey(peer))
    const answer = await holders.ask(peer, (holder, signal) => this.components.peers.fetchMetainfo(holder, digest, { signal }), { signal: this.stopped.signal, question: 'metainfo', patient: true })
      .catch(() => undefined)
    if (!answer) return undefined
    this.components.reputation?.sameNode(peerKey({ host: peer.host, port: answer.wirePort }), peerKey(peer))
    return { peer, wireAddress: { host: peer.host, port: answer.wirePort }, infoHash: answer.infoHash, ...(answer.metainfo ? { metainfo: answer.metainfo } : {}) }
  }

  /** While the download runs: finds nodes that started holding or downloading the blob since. */
  private async discover(digest: Digest, metainfo: Metainfo, initial: HolderPool): Promise<void> {
    const signal = this.stopped.signal
    let holders = initial
    try {
      for (let round = 0; this.components.swarm.downloading(digest) && !signal.aborted; round++) {
        for (const peer of holders.found) {
          if (this.contacted.get(digest)?.has(peerKey(peer)) || holders.isSkipped(peer)) continue
          const offer = await this.ask(holders, peer)
          if (offer && offer.infoHash === metainfo.infoHash) await this.components.swarm.fetch(metainfo, [offer.wireAddress]).catch(() => {})
        }
        await new Wakeup(this.components.clock ?? systemClock).wait({ timeoutMs: FIRST_DISCOVERY_ROUNDS_MS[round] ?? DISCOVERY_INTERVAL_MS, signal })
        if (signal.aborted) break
        holders = this.components.pools.pool(digest, { fresh: true })
        await holders.nth(Number.MAX_SAFE_INTEGER, DISCOVERY_INTERVAL_MS)
      }
    } catch (err) {
      this.components.logger.warn({ digest, err }, 'looking for more holders of a running download failed; the download goes on with those it has')
    } finally {
      this.contacted.delete(digest)
      this.components.advertiser.release(digest)
    }
  }
}
