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
  private stopped = new AbortController()

  constructor(private readonly components: SwarmJoinComponents, private readonly init: { stallMs: number }) {}

  start(): void {}

  /** Ends every discovery loop; joins started later run again. */
  stop(): void {
    this.stopped.abort()
    this.stopped = new AbortController()
  }

  /** The download of `digest`, joined or started; undefined if no holder gave its metainfo in time. */
  join(digest: Digest, holders: HolderSearch): Promise<Download | undefined> {
    const running = this.components.swarm.downloading(digest)
    if (running) return Promise.resolve(running)
    let join = this.pending.get(digest)
    if (!join) {
      join = this.begin(digest, holders).finally(() => this.pending.delete(digest))
      this.pending.set(digest, join)
    }
    return join
  }

  private async begin(digest: Digest, holders: HolderSearch): Promise<Download | undefined> {
    const known = await this.components.metainfo.cached(digest)
    const first = await this.firstMetainfo(digest, holders, known)
    if (!first) return undefined
    const download = await this.components.swarm.fetch(first.metainfo, [first.wire])
    this.components.advertiser.hold(digest)
    void this.discover(digest, first.metainfo, holders)
    return download
  }

  /** Asks up to METAINFO_FANOUT holders at once; resolves with the first answer and adds the others as peers. */
  private firstMetainfo(digest: Digest, holders: HolderSearch, known: Metainfo | undefined): Promise<{ metainfo: Metainfo; wire: PeerAddress } | undefined> {
    return new Promise((resolve) => {
      let first: Metainfo | undefined
      let outstanding = 0
      let listed = false
      const silent = new Set<PeerAddress>()
      const settleIfDone = (): void => {
        if (listed && outstanding === 0 && !first) resolve(undefined)
      }
      void (async () => {
        let asked = 0
        for (let index = 0; asked < METAINFO_FANOUT; index++) {
          const peer = await holders.nth(index, this.init.stallMs)
          if (!peer) break
          // A holder that failed lately is asked only when nobody better was found.
          if (asked > 0 && this.components.health.isSkipped(peer)) continue
          asked++
          outstanding++
          silent.add(peer)
          void this.ask(digest, peer, first ?? known).then((answer) => {
            if (!answer) return
            if (first) return this.components.swarm.fetch(first, [answer.wire]).then(() => undefined, () => undefined)
            first = answer.metainfo
            this.skipSilentLater(digest, silent)
            resolve(answer)
          }).finally(() => {
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

  /** Holders still silent a while after another one answered are skipped by later requests (their asks go on). */
  private skipSilentLater(digest: Digest, silent: Set<PeerAddress>): void {
    const { health } = this.components
    const timer = setTimeout(() => {
      for (const peer of silent) health.failed(peer, digest, 'no metainfo answer while another holder answered')
    }, 2 * health.answerTimeoutMs())
    timer.unref()
  }

  private async ask(digest: Digest, peer: PeerAddress, known: Metainfo | undefined): Promise<{ metainfo: Metainfo; wire: PeerAddress } | undefined> {
    let contacted = this.contacted.get(digest)
    if (!contacted) this.contacted.set(digest, (contacted = new Set()))
    contacted.add(peerKey(peer))
    try {
      const answer = await this.components.peers.fetchMetainfo(peer, digest, { signal: AbortSignal.any([AbortSignal.timeout(this.init.stallMs), this.stopped.signal]) })
      if (!answer) return undefined
      if (known && answer.metainfo.infoHash !== known.infoHash) {
        this.components.logger.warn({ peer: peerKey(peer), digest, theirs: answer.metainfo.infoHash, ours: known.infoHash }, 'peer has different metainfo; ignoring it')
        return undefined
      }
      this.components.health.delivered(digest, peer)
      return { metainfo: answer.metainfo, wire: { host: peer.host, port: answer.wirePort } }
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
          const answer = await this.ask(digest, peer, metainfo)
          if (answer) await this.components.swarm.fetch(metainfo, [answer.wire]).catch(() => {})
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
