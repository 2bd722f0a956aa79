import { systemClock, type Clock } from '../util/clock.js'
import { RateMeter } from './rate.js'

export type TransferRole = 'download' | 'seed' | 'http'
export type TransferOutcome = 'active' | 'complete' | 'failed' | 'abandoned'
export type MirrorSource = 'local' | 'peer' | 'swarm' | 'first-pull' | 'upstream-fallback'

/** `local` and `upstream` are sources too; every other source is a peer's `ip:port`. */
export const LOCAL_SOURCE = 'local'

/** What the layers report; the ledger only counts, it decides nothing. */
export type LedgerEvent =
  | { type: 'transfer-started'; key: string; digest: string; infoHash?: string; size: number; pieceLength?: number; role: TransferRole }
  | { type: 'peer-connected' | 'peer-disconnected'; key: string; peer: string }
  | { type: 'bytes-received'; key: string; peer: string; bytes: number }
  /** `source`: the peer credited with the piece; `verifiedBytes`: bytes of the kept copy per sender. */
  | { type: 'piece-verified'; key: string; piece: number; source: string | undefined; verifiedBytes: ReadonlyMap<string, number> }
  | { type: 'piece-failed'; key: string; piece: number }
  | { type: 'bytes-sent'; key: string; peer: string; bytes: number }
  | { type: 'transfer-completed'; key: string }
  | { type: 'served'; digest: string; peer: string; bytes: number }
  | { type: 'transfer-finished'; key: string; outcome: Exclude<TransferOutcome, 'active'>; error?: string }
  /** A request of the local containerd answered: from where, or 404 so that it goes upstream. */
  | { type: 'mirror-answered'; source: MirrorSource; bytes: number }
  | { type: 'peer-banned'; peer: string }
  /** Something went wrong and was handled: the node carries on (see docs/troubleshooting.md). */
  | { type: 'fault'; kind: FaultKind; detail: string }

/**
 * `io`: a disk error (ENOSPC, EIO, EMFILE…) failed a transfer or a cache write;
 * `peer-unanswered`: a holder did not answer in time and is skipped for a while;
 * `peer-silent`: a wire stopped delivering requested blocks and was dropped;
 * `peer-overrun`: a wire asked for more than its request cap or stopped reading, and was dropped;
 * `peer-idle`: a wire of no use was closed (no interest either way, interest without requests, kept choked);
 * `wires-full`: a wire was refused because its swarm or this node had as many connections as it keeps;
 * `content-unavailable`: the content store (containerd) did not answer;
 * `peer-unauthenticated`: a peer did not prove the cluster key (wire or HTTP) and was refused;
 * `peer-lied`: a peer's metainfo or size disagreed with the blob's digest, and it was banned.
 */
export type FaultKind = 'io' | 'peer-unanswered' | 'peer-silent' | 'peer-overrun' | 'peer-idle' | 'wires-full' | 'content-unavailable' | 'peer-unauthenticated' | 'peer-lied'
export const FAULT_KINDS: readonly FaultKind[] = ['io', 'peer-unanswered', 'peer-silent', 'peer-overrun', 'peer-idle', 'wires-full', 'content-unavailable', 'peer-unauthenticated', 'peer-lied']
const RECENT_FAULTS = 20

export interface FaultRecord {
  at: number
  kind: FaultKind
  detail: string
}

export interface PeerCounters {
  /** Bytes received, duplicates and rejected pieces included. */
  received: number
  /** Bytes of verified pieces this peer supplied: over all peers, the blob's size once complete. */
  verified: number
  sent: number
  pieces: number
  connected: boolean
}

export interface TransferState {
  key: string
  digest: string
  infoHash: string | undefined
  role: TransferRole
  size: number
  pieceLength: number | undefined
  outcome: TransferOutcome
  error: string | undefined
  startedAt: number
  /** When every byte was verified (downloads keep seeding for a while after). */
  completedAt: number | undefined
  finishedAt: number | undefined
  verifiedPieces: number
  received: number
  sent: number
  peers: Map<string, PeerCounters>
  /** Per piece: index into `sourceNames` of the peer that supplied it, -1 while missing. */
  pieceSources: Int16Array
  sourceNames: string[]
  downloadRate: RateMeter
  uploadRate: RateMeter
}

export interface TransferLedgerInit {
  /** Finished transfers kept for /stats. */
  recentLimit?: number
  /** The one name of the node behind an address a peer was seen at (its wire or its registry API). */
  nodeOf?: (address: string) => string
}

export const DEFAULT_RECENT_TRANSFERS = 50
const SERVED_LIMIT = 500

/**
 * The node's statistics: transfers with their peers and piece sources, blobs served, how the
 * local containerd's requests were answered. Every layer reports here through `record`; /stats,
 * /debug and the measure pull read from here.
 */
export class TransferLedger {
  readonly transfers = new Map<string, TransferState>()
  private readonly recent: TransferState[] = []
  private readonly recentLimit: number
  readonly totals = { received: 0, sent: 0, piecesVerified: 0, piecesFailed: 0, bans: 0 }
  /** Blobs served over HTTP to peers, by digest then peer (bounded, most recent last). */
  readonly served = new Map<string, Map<string, number>>()
  /** Handled faults since start, by kind, and the most recent ones (newest first). */
  readonly faults = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>
  readonly recentFaults: FaultRecord[] = []
  readonly mirror: Record<MirrorSource, { requests: number; bytes: number }> = {
    local: { requests: 0, bytes: 0 }, peer: { requests: 0, bytes: 0 }, swarm: { requests: 0, bytes: 0 }, 'first-pull': { requests: 0, bytes: 0 }, 'upstream-fallback': { requests: 0, bytes: 0 },
  }

  private readonly nodeOf: (address: string) => string

  constructor(private readonly clock: Clock = systemClock, init: TransferLedgerInit = {}) {
    this.recentLimit = init.recentLimit ?? DEFAULT_RECENT_TRANSFERS
    this.nodeOf = init.nodeOf ?? ((address) => address)
  }

  record(event: LedgerEvent): void {
    switch (event.type) {
      case 'transfer-started': return this.start(event)
      case 'served': return this.recordServed(event.digest, event.peer, event.bytes)
      case 'mirror-answered':
        this.mirror[event.source].requests++
        this.mirror[event.source].bytes += event.bytes
        return
      case 'peer-banned':
        this.totals.bans++
        return
      case 'fault':
        this.faults[event.kind]++
        this.recentFaults.unshift({ at: this.clock.now(), kind: event.kind, detail: event.detail })
        if (this.recentFaults.length > RECENT_FAULTS) this.recentFaults.pop()
        return
    }
    const transfer = this.transfers.get(event.key)
    if (!transfer) return
    switch (event.type) {
      case 'peer-connected':
      case 'peer-disconnected':
        this.peer(transfer, event.peer).connected = event.type === 'peer-connected'
        return
      case 'bytes-received': return this.received(transfer, event.peer, event.bytes)
      case 'bytes-sent': return this.sent(transfer, event.peer, event.bytes)
      case 'piece-verified': return this.verified(transfer, event.piece, event.source, event.verifiedBytes)
      case 'piece-failed':
        this.totals.piecesFailed++
        return
      case 'transfer-completed':
        transfer.completedAt ??= this.clock.now()
        return
      case 'transfer-finished': return this.finish(transfer, event.outcome, event.error)
    }
  }

  recentTransfers(): readonly TransferState[] {
    return this.recent
  }

  private recordServed(digest: string, peer: string, bytes: number): void {
    const peers = this.served.get(digest) ?? new Map<string, number>()
    this.served.delete(digest)
    this.served.set(digest, peers)
    peers.set(peer, (peers.get(peer) ?? 0) + bytes)
    this.totals.sent += bytes
    if (this.served.size > SERVED_LIMIT) this.served.delete(this.served.keys().next().value as string)
  }

  private start(event: Extract<LedgerEvent, { type: 'transfer-started' }>): void {
    const pieces = event.pieceLength ? Math.ceil(event.size / event.pieceLength) : 0
    this.transfers.set(event.key, {
      key: event.key, digest: event.digest, infoHash: event.infoHash, role: event.role, size: event.size,
      pieceLength: event.pieceLength, outcome: 'active', error: undefined, startedAt: this.clock.now(), completedAt: undefined, finishedAt: undefined,
      verifiedPieces: 0, received: 0, sent: 0, peers: new Map(), pieceSources: new Int16Array(pieces).fill(-1), sourceNames: [],
      downloadRate: new RateMeter(this.clock), uploadRate: new RateMeter(this.clock),
    })
  }

  private peer(transfer: TransferState, address: string): PeerCounters {
    const name = this.nodeOf(address)
    let counters = transfer.peers.get(name)
    if (!counters) {
      counters = { received: 0, verified: 0, sent: 0, pieces: 0, connected: false }
      transfer.peers.set(name, counters)
    }
    return counters
  }

  private received(transfer: TransferState, peer: string, bytes: number): void {
    this.peer(transfer, peer).received += bytes
    transfer.received += bytes
    transfer.downloadRate.add(bytes)
    this.totals.received += bytes
  }

  private sent(transfer: TransferState, peer: string, bytes: number): void {
    this.peer(transfer, peer).sent += bytes
    transfer.sent += bytes
    transfer.uploadRate.add(bytes)
    this.totals.sent += bytes
  }

  private verified(transfer: TransferState, piece: number, source: string | undefined, verifiedBytes: ReadonlyMap<string, number>): void {
    if (piece < 0 || piece >= transfer.pieceSources.length || transfer.pieceSources[piece] !== -1) return
    transfer.verifiedPieces++
    this.totals.piecesVerified++
    if (source === undefined) return
    const name = this.nodeOf(source)
    let index = transfer.sourceNames.indexOf(name)
    if (index === -1) index = transfer.sourceNames.push(name) - 1
    transfer.pieceSources[piece] = index
    this.peer(transfer, source).pieces++
    for (const [peer, bytes] of verifiedBytes) this.peer(transfer, peer).verified += bytes
  }

  private finish(transfer: TransferState, outcome: Exclude<TransferOutcome, 'active'>, error: string | undefined): void {
    transfer.outcome = outcome
    transfer.error = error
    transfer.finishedAt = this.clock.now()
    if (transfer.role === 'http' && outcome === 'complete') {
      for (const counters of transfer.peers.values()) counters.verified = counters.received
    }
    this.transfers.delete(transfer.key)
    this.recent.unshift(transfer)
    if (this.recent.length > this.recentLimit) this.recent.pop()
  }
}
