import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import { peerKey, type PeerAddress, type Router } from '../routing/router.js'
import type { Download } from '../swarm/download.js'
import type { Metainfo } from '../swarm/metainfo.js'
import type { MetainfoCache } from '../swarm/metainfo-cache.js'
import type { Swarm } from '../swarm/swarm.js'
import type { HolderHealth } from './holder-health.js'
import { describeError } from '../util/errors.js'
import { HolderSearch } from './holders.js'
import type { PeerClient } from './peer-client.js'

export const DISCOVERY_INTERVAL_MS = 2_000
const METAINFO_FANOUT = 8
/** Digests whose refused infohashes are remembered. */
const MAX_REJECTED = 1024

/** What one peer offers for a blob's swarm: its wire, the infohash it serves, and the metainfo if it holds the blob. */
interface Offer {
  peer: PeerAddress
  wire: PeerAddress
  infoHash: string
  metainfo?: Metainfo
}

/** The metainfo a download uses, the wires to start with, and who supplied it (none: computed here). */
interface Chosen {
  metainfo: Metainfo
  wires: PeerAddress[]
  supplier?: PeerAddress
}

/** Keys announced for as long as a download runs, so later requesters swarm with this node. */
export interface TransientAdvertiser {
  hold(key: string): void
  release(key: string): void
}

export interface SwarmJoinComponents {
  router: Router
  peers: PeerClient
  swarm: Swarm
  metainfo: MetainfoCache
  advertiser: TransientAdvertiser
  health: HolderHealth
  logger: Logger
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
  join(digest: Digest, holders: HolderSearch, size: number): Promise<Download | undefined> {
    const running = this.components.swarm.downloading(digest)
    if (running) return Promise.resolve(running)
    let join = this.pending.get(digest)
    if (!join) {
      join = this.begin(digest, holders, size).finally(() => this.pending.delete(digest))
      this.pending.set(digest, join)
    }
    return join
  }

  private async begin(digest: Digest, holders: HolderSearch, size: number): Promise<Download | undefined> {
    const known = await this.components.metainfo.cached(digest)
    const first = await this.firstMetainfo(digest, holders, { known, size })
    if (!first) return undefined
    const download = await this.components.swarm.fetch(first.metainfo, first.wires)
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
  private firstMetainfo(digest: Digest, holders: HolderSearch, expect: { known: Metainfo | undefined; size: number }): Promise<Chosen | undefined> {
    return new Promise((resolve) => {
      let chosen: Chosen | undefined = expect.known && { metainfo: expect.known, wires: [] }
      const waiting: Offer[] = []
      let outstanding = 0
      let listed = false
      const silent = new Set<PeerAddress>()
      const settleIfDone = (): void => {
        if (listed && outstanding === 0 && !(chosen && chosen.wires.length > 0)) resolve(undefined)
      }
      const consider = (offer: Offer): void => {
        if (!this.believable(digest, offer, expect)) return
        if (chosen && offer.infoHash !== chosen.metainfo.infoHash) return
        if (chosen && chosen.wires.length > 0) {
          void this.components.swarm.fetch(chosen.metainfo, [offer.wire]).catch(() => {})
          return
        }
        if (!chosen && !offer.metainfo) {
          waiting.push(offer)
          return
        }
        chosen ??= { metainfo: offer.metainfo!, wires: [], supplier: offer.peer }
        chosen.wires = [offer.wire, ...waiting.filter((other) => other.infoHash === chosen!.metainfo.infoHash).map((other) => other.wire)]
        this.skipSilentLater(digest, silent)
        resolve(chosen)
      }
      void (async () => {
        let asked = 0
        for (let index = 0; asked < METAINFO_FANOUT; index++) {
          const peer = await holders.nth(index, this.init.stallMs)
          if (!peer) break
          // A holder that failed lately is asked only when nobody better was found.
          if (this.components.health.isBanned(peer) || (asked > 0 && this.components.health.isSkipped(peer))) continue
          asked++
          outstanding++
          silent.add(peer)
          void this.ask(digest, peer).then((offer) => offer && consider(offer)).finally(() => {
            silent.delete(peer)
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

  /** Holders still silent a while after another one answered are skipped by later requests (their asks go on). */
  private skipSilentLater(digest: Digest, silent: Set<PeerAddress>): void {
    const { health } = this.components
    const timer = setTimeout(() => {
      for (const peer of silent) health.failed(peer, digest, 'no metainfo answer while another holder answered')
    }, 2 * health.answerTimeoutMs())
    timer.unref()
  }

  private async ask(digest: Digest, peer: PeerAddress): Promise<Offer | undefined> {
    let contacted = this.contacted.get(digest)
    if (!contacted) this.contacted.set(digest, (contacted = new Set()))
    contacted.add(peerKey(peer))
    try {
      const answer = await this.components.peers.fetchMetainfo(peer, digest, { signal: AbortSignal.any([AbortSignal.timeout(this.init.stallMs), this.stopped.signal]) })
      if (!answer) return undefined
      this.components.health.delivered(digest, peer)
      return { peer, wire: { host: peer.host, port: answer.wirePort }, infoHash: answer.infoHash, ...(answer.metainfo ? { metainfo: answer.metainfo } : {}) }
    } catch (err) {
      if (this.stopped.signal.aborted) return undefined
      this.components.health.failed(peer, digest, describeError(err))
      this.components.logger.debug({ peer: peerKey(peer), digest, err }, 'metainfo request failed; skipping this holder for a while')
      return undefined
    }
  }

  /** While the download runs: finds nodes that started holding or downloading the blob since. */
  private async discover(digest: Digest, metainfo: Metainfo, initial: HolderSearch): Promise<void> {
    const signal = this.stopped.signal
    let search = initial
    try {
      while (this.components.swarm.downloading(digest)) {
        for (const peer of search.found) {
          if (this.contacted.get(digest)?.has(peerKey(peer)) || this.components.health.isSkipped(peer)) continue
          const offer = await this.ask(digest, peer)
          if (offer && offer.infoHash === metainfo.infoHash) await this.components.swarm.fetch(metainfo, [offer.wire]).catch(() => {})
        }
        await sleep(DISCOVERY_INTERVAL_MS, undefined, { signal })
        search = new HolderSearch(this.components.router, digest, { signal: AbortSignal.any([AbortSignal.timeout(DISCOVERY_INTERVAL_MS), signal]), health: this.components.health })
        await search.nth(Number.MAX_SAFE_INTEGER, DISCOVERY_INTERVAL_MS)
      }
    } catch {
      // stopped
    } finally {
      this.contacted.delete(digest)
      this.components.advertiser.release(digest)
    }
  }
}
