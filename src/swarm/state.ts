import { RateMeter } from './rate.js'

export type TransferRole = 'download' | 'seed' | 'http'
export type TransferOutcome = 'active' | 'complete' | 'failed' | 'abandoned'

/** `local` and `upstream` are sources too; every other source is a peer's `ip:port`. */
export const LOCAL_SOURCE = 'local'

export type SwarmEvent =
  | { type: 'transfer-started'; key: string; digest: string; infoHash?: string; size: number; pieceLength?: number; role: TransferRole }
  | { type: 'peer-connected' | 'peer-disconnected'; key: string; peer: string }
  | { type: 'bytes-received'; key: string; peer: string; bytes: number; block?: Block }
  /** `goodBlocks`: CRC32 per block offset of the verified data, when `needsGoodBlocks` asked for it. */
  | { type: 'piece-verified'; key: string; piece: number; goodBlocks?: Map<number, number> }
  | { type: 'piece-failed'; key: string; piece: number }
  | { type: 'bytes-sent'; key: string; peer: string; bytes: number }
  | { type: 'transfer-completed'; key: string }
  | { type: 'served'; digest: string; peer: string; bytes: number }
  | { type: 'transfer-finished'; key: string; outcome: Exclude<TransferOutcome, 'active'>; error?: string }
  /** A request of the local containerd answered: from where, or 404 so that it goes upstream. */
  | { type: 'mirror-answered'; source: MirrorSource; bytes: number }

export type MirrorSource = 'local' | 'peer' | 'swarm' | 'upstream-fallback'

export type SwarmAction = { type: 'ban-peer'; peer: string; untilMs: number; reason: string }

/** One block of a piece as received: who sent it and a CRC32 of its bytes. */
export interface Block {
  piece: number
  offset: number
  length: number
  crc: number
}

type BlockLog = Map<number, { peer: string; crc: number; length: number }[]>

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

export interface SwarmStateInit {
  banMs?: number
  /** Finished transfers kept for /stats. */
  recentLimit?: number
}

export const DEFAULT_BAN_MS = 10 * 60_000
const SERVED_LIMIT = 500

/**
 * Every change to the swarm's state goes through `apply`: transfers, their peers and piece
 * sources, strikes and bans. It returns what must happen as a consequence (bans), which the
 * swarm adapter carries out. Stats read from here.
 */
export class SwarmState {
  readonly transfers = new Map<string, TransferState>()
  private readonly recent: TransferState[] = []
  /** Blocks of pieces being assembled, by `key#piece`. */
  private readonly blocks = new Map<string, BlockLog>()
  /** Blocks of pieces that failed with several senders, kept until a good copy shows who lied. */
  private readonly suspects = new Map<string, BlockLog>()
  private readonly bans = new Map<string, number>()
  private readonly banMs: number
  private readonly recentLimit: number
  readonly totals = { received: 0, sent: 0, piecesVerified: 0, piecesFailed: 0, bans: 0 }
  /** Blobs served over HTTP to peers, by digest then peer (bounded, most recent last). */
  readonly served = new Map<string, Map<string, number>>()
  /** The local containerd's requests by how they were answered, and the body bytes sent. */
  readonly mirror: Record<MirrorSource, { requests: number; bytes: number }> = {
    local: { requests: 0, bytes: 0 }, peer: { requests: 0, bytes: 0 }, swarm: { requests: 0, bytes: 0 }, 'upstream-fallback': { requests: 0, bytes: 0 },
  }

  constructor(init: SwarmStateInit = {}) {
    this.banMs = init.banMs ?? DEFAULT_BAN_MS
    this.recentLimit = init.recentLimit ?? 50
  }

  apply(event: SwarmEvent): SwarmAction[] {
    if (event.type === 'transfer-started') {
      this.start(event)
      return []
    }
    if (event.type === 'served') {
      this.recordServed(event.digest, event.peer, event.bytes)
      return []
    }
    if (event.type === 'mirror-answered') {
      this.mirror[event.source].requests++
      this.mirror[event.source].bytes += event.bytes
      return []
    }
    const transfer = this.transfers.get(event.key)
    if (!transfer) return []
    switch (event.type) {
      case 'peer-connected':
      case 'peer-disconnected':
        this.peer(transfer, event.peer).connected = event.type === 'peer-connected'
        return []
      case 'bytes-received':
        this.received(transfer, event.peer, event.bytes, event.block)
        return []
      case 'bytes-sent':
        this.sent(transfer, event.peer, event.bytes)
        return []
      case 'piece-verified':
        return this.verified(transfer, event.piece, event.goodBlocks)
      case 'piece-failed':
        return this.failed(transfer, event.piece)
      case 'transfer-completed':
        transfer.completedAt ??= Date.now()
        return []
      case 'transfer-finished':
        this.finish(transfer, event.outcome, event.error)
        return []
    }
  }

  isBanned(peer: string, now = Date.now()): boolean {
    const until = this.bans.get(peer)
    if (until === undefined) return false
    if (until > now) return true
    this.bans.delete(peer)
    return false
  }

  bannedPeers(now = Date.now()): { peer: string; until: string }[] {
    return [...this.bans].filter(([peer]) => this.isBanned(peer, now)).map(([peer, until]) => ({ peer, until: new Date(until).toISOString() }))
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

  private start(event: Extract<SwarmEvent, { type: 'transfer-started' }>): void {
    const pieces = event.pieceLength ? Math.ceil(event.size / event.pieceLength) : 0
    this.transfers.set(event.key, {
      key: event.key, digest: event.digest, infoHash: event.infoHash, role: event.role, size: event.size,
      pieceLength: event.pieceLength, outcome: 'active', error: undefined, startedAt: Date.now(), completedAt: undefined, finishedAt: undefined,
      verifiedPieces: 0, received: 0, sent: 0, peers: new Map(), pieceSources: new Int16Array(pieces).fill(-1), sourceNames: [],
      downloadRate: new RateMeter(), uploadRate: new RateMeter(),
    })
  }

  private peer(transfer: TransferState, name: string): PeerCounters {
    let counters = transfer.peers.get(name)
    if (!counters) {
      counters = { received: 0, verified: 0, sent: 0, pieces: 0, connected: false }
      transfer.peers.set(name, counters)
    }
    return counters
  }

  /** Whether `piece-verified` for this piece should carry the good blocks' CRC32s. */
  needsGoodBlocks(key: string, piece: number): boolean {
    return this.suspects.has(`${key}#${piece}`)
  }

  private received(transfer: TransferState, peer: string, bytes: number, block: Block | undefined): void {
    this.peer(transfer, peer).received += bytes
    transfer.received += bytes
    transfer.downloadRate.add(bytes)
    this.totals.received += bytes
    if (!block) return
    const key = `${transfer.key}#${block.piece}`
    let log = this.blocks.get(key)
    if (!log) this.blocks.set(key, (log = new Map()))
    let senders = log.get(block.offset)
    if (!senders) log.set(block.offset, (senders = []))
    senders.push({ peer, crc: block.crc, length: block.length })
  }

  private sent(transfer: TransferState, peer: string, bytes: number): void {
    this.peer(transfer, peer).sent += bytes
    transfer.sent += bytes
    transfer.uploadRate.add(bytes)
    this.totals.sent += bytes
  }

  private verified(transfer: TransferState, piece: number, goodBlocks: Map<number, number> | undefined): SwarmAction[] {
    const key = `${transfer.key}#${piece}`
    const log = this.blocks.get(key)
    const sources = senders(log)
    this.blocks.delete(key)
    const actions = this.convictLiars(transfer, piece, goodBlocks)
    if (piece < 0 || piece >= transfer.pieceSources.length || transfer.pieceSources[piece] !== -1) return actions
    transfer.verifiedPieces++
    this.totals.piecesVerified++
    const source = sources[sources.length - 1]
    if (source === undefined) return actions
    let index = transfer.sourceNames.indexOf(source)
    if (index === -1) index = transfer.sourceNames.push(source) - 1
    transfer.pieceSources[piece] = index
    this.peer(transfer, source).pieces++
    for (const sent of log?.values() ?? []) {
      const kept = sent[sent.length - 1]
      if (kept) this.peer(transfer, kept.peer).verified += kept.length
    }
    return actions
  }

  /** Compares what each suspect sent with the good copy: whoever sent different bytes lied. */
  private convictLiars(transfer: TransferState, piece: number, goodBlocks: Map<number, number> | undefined): SwarmAction[] {
    const key = `${transfer.key}#${piece}`
    const suspect = this.suspects.get(key)
    if (!suspect || !goodBlocks) return []
    this.suspects.delete(key)
    const liars = new Set<string>()
    for (const [offset, sent] of suspect) {
      for (const { peer, crc } of sent) if (goodBlocks.get(offset) !== crc) liars.add(peer)
    }
    return [...liars].flatMap((peer) => this.ban(peer, `sent data for piece ${piece} of ${transfer.digest} that differs from the verified piece`))
  }

  /**
   * A failed piece from one sender convicts it. With several senders, their blocks are kept
   * until the piece verifies; then the ones whose blocks differ from the good data are banned.
   */
  private failed(transfer: TransferState, piece: number): SwarmAction[] {
    const key = `${transfer.key}#${piece}`
    const log = this.blocks.get(key) ?? new Map()
    this.blocks.delete(key)
    this.totals.piecesFailed++
    const sources = senders(log)
    if (sources.length === 1) return this.ban(sources[0]!, `sent piece ${piece} of ${transfer.digest} that failed SHA-1 verification`)
    const suspect = this.suspects.get(key) ?? new Map()
    for (const [offset, sent] of log) suspect.set(offset, [...(suspect.get(offset) ?? []), ...sent])
    this.suspects.set(key, suspect)
    return []
  }

  private ban(peer: string, reason: string): SwarmAction[] {
    if (this.isBanned(peer)) return []
    const untilMs = Date.now() + this.banMs
    this.bans.set(peer, untilMs)
    this.totals.bans++
    return [{ type: 'ban-peer', peer, untilMs, reason }]
  }

  private finish(transfer: TransferState, outcome: Exclude<TransferOutcome, 'active'>, error: string | undefined): void {
    transfer.outcome = outcome
    transfer.error = error
    transfer.finishedAt = Date.now()
    if (transfer.role === 'http' && outcome === 'complete') {
      for (const counters of transfer.peers.values()) counters.verified = counters.received
    }
    this.transfers.delete(transfer.key)
    for (const map of [this.blocks, this.suspects]) {
      for (const key of map.keys()) if (key.startsWith(`${transfer.key}#`)) map.delete(key)
    }
    this.recent.unshift(transfer)
    if (this.recent.length > this.recentLimit) this.recent.pop()
  }
}

function senders(log: BlockLog | undefined): string[] {
  const peers = new Set<string>()
  for (const sent of log?.values() ?? []) for (const { peer } of sent) peers.add(peer)
  return [...peers]
}
