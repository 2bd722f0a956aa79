import type { Transform } from 'node:stream'
import WebTorrent, { type Torrent, type Wire } from 'webtorrent'
import type { DialAddress } from '../net/address.js'
import type { Digest } from '../oci/digest.js'
import type { LedgerEvent } from '../observe/ledger.js'
import { abortable, type SignalOptions } from '../util/abort.js'
import { every, systemClock, type Clock } from '../util/clock.js'
import type { Ban } from './ban-policy.js'
import { Download, DownloadFailedError } from './download.js'
import { DownloadFile, clearDownloads, downloadPath } from './download-store.js'
import { pieceCount, type Metainfo } from './metainfo.js'
import { encodePeerId } from './peer-id.js'
import { piecesInFlight } from './http-pieces.js'
import { PeerWires } from './peer-wires.js'
import { DEFAULT_VERIFY_THREADS, PieceVerifier } from './piece-verifier.js'
import { installBtPatches } from './bt-internals.js'
import { peerLabel, readVerifiedPiece } from './wire-label.js'
import { PieceCache, seedStoreClass } from './seed-store.js'
import { Stripes } from './stripes.js'
import type { Swarm } from './swarm.js'
import { DEFAULT_LINGER_MS, DEFAULT_PIECE_CACHE_BYTES, DEFAULT_SEED_IDLE_MS, type SwarmComponents, type WebTorrentSwarmInit } from './webtorrent-options.js'
import { DEFAULT_PEER_IDLE_MS, WireGuard } from './wire-guard.js'

const HOUSEKEEPING_MS = 5_000
const CRITICAL_WINDOW = 4
const UNCHOKE_SLOTS = 64
const FAILED_PIECE = /^Piece (\d+) failed verification$/

interface Entry {
  key: string
  role: 'seed' | 'download'
  metainfo: Metainfo
  torrent: Torrent
  download?: Download
  file?: DownloadFile
  stripes?: Stripes
  /** Settles when the torrent can take peers. */
  ready: Promise<void>
  startedAt: number
  lastUsed: number
  finishedAt?: number
}


/** The Swarm on webtorrent: a private, silent client that only talks to peers shoal gives it. */
export class WebTorrentSwarm implements Swarm {
  private client: WebTorrent | undefined
  private readonly entries = new Map<Digest, Entry>()
  private readonly pieceCache: PieceCache
  private stopHousekeeping = (): void => {}
  private readonly label: string
  private readonly clock: Clock
  private readonly guard: WireGuard
  private readonly wires: PeerWires
  private readonly peerId: Buffer
  private readonly verifier: PieceVerifier | undefined

  constructor(private readonly components: SwarmComponents, private readonly init: WebTorrentSwarmInit) {
    this.pieceCache = new PieceCache(init.pieceCacheBytes ?? DEFAULT_PIECE_CACHE_BYTES)
    this.label = `${init.identity.host}:${init.wirePort}`
    this.clock = components.clock ?? systemClock
    this.guard = new WireGuard({ clock: this.clock, onDrop: (wire, kind, detail) => this.wires.dropped(wire, kind, detail) },
      init.peerIdleMs === undefined ? {} : { idleMs: init.peerIdleMs })
    this.peerId = encodePeerId(init.identity.host, init.wirePort)
    const httpPieces = init.httpPieces !== false
    const verifyThreads = init.verifyThreads ?? DEFAULT_VERIFY_THREADS
    this.verifier = verifyThreads === 0 ? undefined : new PieceVerifier({}, { threads: verifyThreads })
    this.wires = new PeerWires({ bans: components.bans, guard: this.guard, metrics: components.metrics, logger: components.logger, emit: (event) => this.emit(event),
      pieces: httpPieces ? components.pieces : undefined, verifier: this.verifier, pieceMemory: components.pieceBuffers, httpPort: httpPieces ? components.registryPort : undefined, registryPort: components.registryPort, reputation: components.reputation },
      { label: this.label, peerId: this.peerId.toString('hex'), clusterKey: init.clusterKey, maxWiresPerSwarm: init.maxWiresPerSwarm, maxWires: init.maxWires })
  }

  async start(): Promise<void> {
    if (this.client) return
    await installBtPatches()
    this.verifier?.start()
    clearDownloads(this.init.dataDir)
    const client = new WebTorrent({
      peerId: this.peerId,
      torrentPort: this.init.wirePort,
      dht: false, tracker: false, lsd: false, utPex: false, natUpnp: false, natPmp: false, utp: false, webSeeds: false,
      secure: 0,
      uploadLimit: this.init.uploadLimit ? this.init.uploadLimit : -1,
    })
    await new Promise<void>((resolve, reject) => {
      client.once('error', reject)
      client.once('listening', () => {
        client.off('error', reject)
        resolve()
      })
    })
    client.on('error', (err: Error) => this.components.logger.error({ err }, 'BitTorrent client error'))
    this.client = client
    this.stopHousekeeping = every(this.clock, Math.min(HOUSEKEEPING_MS, (this.init.peerIdleMs ?? DEFAULT_PEER_IDLE_MS) / 2),
      () => this.tidy().catch((err: unknown) => this.components.logger.error({ err }, 'swarm housekeeping failed')))
    this.components.logger.info({ wirePort: this.wirePort(), peerId: client.peerId }, 'BitTorrent wire listening')
  }

  async stop(): Promise<void> {
    this.stopHousekeeping()
    for (const digest of [...this.entries.keys()]) await this.remove(digest, 'abandoned')
    const client = this.client
    this.client = undefined
    if (client) await new Promise<void>((resolve) => client.destroy(() => resolve()))
    await this.verifier?.stop()
  }

  wirePort(): number {
    return this.client?.address()?.port ?? this.init.wirePort
  }

  uploadThrottle(): Transform | undefined {
    if (!this.client) throw new Error('swarm is not started')
    return this.init.uploadLimit ? this.client.throttleGroups.up.throttle() : undefined
  }

  downloading(digest: Digest): Download | undefined {
    return this.entries.get(digest)?.download
  }

  async seed(metainfo: Metainfo, options: SignalOptions = {}): Promise<void> {
    const existing = this.entries.get(metainfo.digest)
    if (existing) {
      existing.lastUsed = this.clock.now()
      return abortable(existing.ready, options.signal)
    }
    const store = seedStoreClass({
      metainfo, content: this.components.content, cache: this.pieceCache,
      onCorruptPiece: (piece) => this.components.logger.error({ digest: metainfo.digest, piece }, 'local content does not match its metainfo; piece withheld'),
    })
    await abortable(this.add(metainfo, 'seed', { store, skipVerify: true }).ready, options.signal)
  }

  async fetch(metainfo: Metainfo, peers: DialAddress[], options: SignalOptions = {}): Promise<Download> {
    let entry = this.entries.get(metainfo.digest)
    if (!entry) {
      const file = new DownloadFile(downloadPath(this.init.dataDir, metainfo), metainfo)
      const bitfield = new Uint8Array(Math.ceil(pieceCount(metainfo) / 8))
      entry = this.add(metainfo, 'download', { store: file.storeClass(), bitfield, strategy: 'sequential' }, file)
    }
    await abortable(entry.ready, options.signal)
    if (!entry.download) throw new DownloadFailedError(metainfo.digest, 'this node already holds the blob and only seeds it')
    entry.lastUsed = this.clock.now()
    // Asked for again: the linger starts over, so it is not dropped before its reader starts.
    entry.download.touch()
    this.connect(entry.torrent, peers)
    return entry.download
  }

  private add(metainfo: Metainfo, role: Entry['role'], options: Record<string, unknown>, file?: DownloadFile): Entry {
    const client = this.client
    if (!client) throw new Error('swarm is not started')
    // alwaysChokeSeeders: webtorrent 3.0.21 flags a peer as a seeder when its bitfield has not
    // arrived yet (every incoming connection) and never clears the flag, so it would choke
    // peers that are still downloading and never trade with them.
    // uploads: a private cluster needs no tit-for-tat; every interested peer is served.
    const torrent = client.add(metainfo.torrent, { announce: [], storeCacheSlots: 0, destroyStoreOnDestroy: false, alwaysChokeSeeders: false, uploads: UNCHOKE_SLOTS, maxWebConns: piecesInFlight(metainfo.pieceLength), ...options })
    const key = `${role}:${metainfo.digest}`
    const ready = new Promise<void>((resolve, reject) => {
      torrent.once('ready', () => resolve())
      torrent.once('error', (err: Error) => reject(err))
    })
    ready.catch(() => {})
    const entry: Entry = { key, role, metainfo, torrent, ready, startedAt: this.clock.now(), lastUsed: this.clock.now(), ...(file ? { file } : {}) }
    if (file) {
      const stripes = entry.stripes = new Stripes(torrent, this.label, peerLabel)
      entry.download = new Download(metainfo, {
        file, clock: this.clock, pool: this.components.pieceBuffers,
        onCritical: (piece) => torrent.critical(piece, Math.min(piece + CRITICAL_WINDOW, pieceCount(metainfo) - 1)),
        onUrgent: (piece) => stripes.markUrgent(piece),
      })
    }
    this.entries.set(metainfo.digest, entry)
    this.emit({ type: 'transfer-started', key, digest: metainfo.digest, infoHash: metainfo.infoHash, size: metainfo.length, pieceLength: metainfo.pieceLength, role })
    this.components.metrics.swarmsActive.inc({ role })
    this.watch(entry)
    return entry
  }

  private watch(entry: Entry): void {
    const { torrent, key, download } = entry
    torrent.on('wire', (wire: Wire) => this.wires.onWire({ key, metainfo: entry.metainfo, downloads: entry.role === 'download', torrent, stripes: entry.stripes, touch: () => { entry.lastUsed = this.clock.now() } }, wire))
    torrent.on('verified', (piece: number) => {
      download?.markVerified(piece)
      if (!download) return
      this.components.metrics.swarmPieces.inc({ result: 'verified' })
      if (!this.components.bans.needsVerifiedPiece(key, piece)) {
        this.pieceVerified(entry, piece)
        return
      }
      void readVerifiedPiece(download, piece).then((data) => this.pieceVerified(entry, piece, data), () => this.pieceVerified(entry, piece))
    })
    torrent.on('warning', (err: Error) => {
      const failed = FAILED_PIECE.exec(err.message)
      if (!failed) return
      this.components.metrics.swarmPieces.inc({ result: 'failed' })
      this.components.logger.warn({ digest: entry.metainfo.digest, piece: Number(failed[1]) }, 'piece failed SHA-1 verification')
      this.emit({ type: 'piece-failed', key, piece: Number(failed[1]) })
      this.carryOut(this.components.bans.pieceFailed(key, Number(failed[1]), entry.metainfo.digest))
    })
    torrent.on('done', () => {
      if (!download) return
      void download.verdict.then((matches) => this.onDownloadDone(entry, matches))
        .catch((err: unknown) => this.components.logger.error({ digest: entry.metainfo.digest, err }, 'could not finish a download'))
    })
    torrent.on('error', (err: NodeJS.ErrnoException) => {
      this.components.logger.error({ digest: entry.metainfo.digest, err }, 'torrent failed; its partial file is removed')
      if (err.code) this.emit({ type: 'fault', kind: 'io', detail: `${entry.metainfo.digest}: ${err.message}` })
      download?.fail(new DownloadFailedError(entry.metainfo.digest, 'the torrent failed', { cause: err }))
      void this.remove(entry.metainfo.digest, 'failed', err.message)
    })
  }

  private connect(torrent: Torrent, peers: DialAddress[]): void {
    for (const peer of peers) {
      const address = `${peer.host}:${peer.port}`
      if (!this.components.bans.isBanned(address) && !torrent.destroyed) torrent.addPeer(address)
    }
  }

  private async onDownloadDone(entry: Entry, matches: boolean): Promise<void> {
    const { metainfo } = entry
    if (!matches) {
      entry.download?.fail(new DownloadFailedError(metainfo.digest, 'the assembled blob does not hash to its digest'))
      await this.remove(metainfo.digest, 'failed', 'digest mismatch')
      return
    }
    entry.finishedAt = this.clock.now()
    this.emit({ type: 'transfer-completed', key: entry.key })
    await this.components.metainfo.remember(metainfo)
    this.components.logger.info({ digest: metainfo.digest, size: metainfo.length, seconds: (entry.finishedAt - entry.startedAt) / 1000 }, 'download complete and verified')
  }

  private emit(event: LedgerEvent): void {
    this.components.ledger.record(event)
  }

  private pieceVerified(entry: Entry, piece: number, verifiedPiece?: Uint8Array): void {
    const { source, verifiedBytes, bans } = this.components.bans.pieceVerified(entry.key, piece, verifiedPiece, entry.metainfo.digest)
    this.emit({ type: 'piece-verified', key: entry.key, piece, source, verifiedBytes })
    this.carryOut(bans)
  }

  private carryOut(bans: Ban[]): void {
    for (const ban of bans) {
      this.components.metrics.swarmPeerBans.inc()
      this.emit({ type: 'peer-banned', peer: ban.peer })
      this.components.logger.warn({ peer: ban.peer, forMs: ban.forMs, reason: ban.reason }, 'banning peer')
      for (const entry of this.entries.values()) {
        for (const wire of [...entry.torrent.wires]) {
          if (peerLabel(wire) === ban.peer) wire.destroy()
        }
        entry.torrent.removePeer(ban.peer)
      }
    }
  }

  /**
   * Closes idle wires; drops idle seeds, finished downloads containerd has committed or nobody
   * read or asked for within the linger time, and abandoned downloads. A download someone reads
   * stays: its file is what the reader is sent.
   */
  private async tidy(): Promise<void> {
    for (const entry of this.entries.values()) this.guard.sweep(entry.torrent.wires)
    const now = this.clock.now()
    const linger = this.init.lingerMs ?? DEFAULT_LINGER_MS
    for (const [digest, entry] of [...this.entries]) {
      if (entry.role === 'seed') {
        if (entry.torrent.wires.length === 0 && now - entry.lastUsed > (this.init.seedIdleMs ?? DEFAULT_SEED_IDLE_MS)) await this.remove(digest, 'complete')
        continue
      }
      const download = entry.download!
      if (download.consumers > 0) continue
      if (entry.finishedAt !== undefined) {
        const committed = await this.components.content.stat(digest).catch(() => undefined)
        if (committed || now - Math.max(entry.finishedAt, download.lastActivity) > linger) await this.remove(digest, 'complete')
      } else if (now - download.lastActivity > linger) {
        download.fail(new DownloadFailedError(digest, 'abandoned: nobody has asked for it for a while'))
        await this.remove(digest, 'abandoned')
      }
    }
  }

  private async remove(digest: Digest, outcome: 'complete' | 'failed' | 'abandoned', error?: string): Promise<void> {
    const entry = this.entries.get(digest)
    if (!entry) return
    this.entries.delete(digest)
    this.components.metrics.swarmsActive.dec({ role: entry.role })
    this.emit({ type: 'transfer-finished', key: entry.key, outcome, ...(error ? { error } : {}) })
    this.components.bans.forget(entry.key)
    // A torrent that failed has destroyed itself, and webtorrent never calls back a second destroy.
    if (!entry.torrent.destroyed) await new Promise<void>((resolve) => entry.torrent.destroy({ destroyStore: false }, () => resolve()))
    await entry.file?.remove().catch((err: unknown) => this.components.logger.error({ err, path: entry.file?.path }, 'could not remove a partial download'))
  }
}
