import { systemClock, type Clock } from '../util/clock.js'

/** One block of a piece as received: who sent it and a CRC32 of its bytes. */
export interface Block {
  piece: number
  offset: number
  length: number
  crc: number
}

export interface Ban {
  peer: string
  untilMs: number
  reason: string
}

/** What a verified piece tells: who is credited with it, the bytes each sender's kept copy gave, and who lied. */
export interface VerifiedPiece {
  source: string | undefined
  verifiedBytes: Map<string, number>
  bans: Ban[]
}

export interface BanPolicyInit {
  banMs?: number
}

export const DEFAULT_BAN_MS = 10 * 60_000

type BlockLog = Map<number, { peer: string; crc: number; length: number }[]>

/**
 * Who sent which block of the pieces being assembled, and who is banned for sending bad ones.
 * A failed piece from one sender convicts it. With several senders, their blocks are kept until
 * the piece verifies; then the ones whose blocks differ from the good data are banned.
 */
export class BanPolicy {
  /** Blocks of pieces being assembled, by `key#piece`. */
  private readonly blocks = new Map<string, BlockLog>()
  /** Blocks of pieces that failed with several senders, kept until a good copy shows who lied. */
  private readonly suspects = new Map<string, BlockLog>()
  private readonly bans = new Map<string, number>()
  private readonly banMs: number

  constructor(private readonly clock: Clock = systemClock, init: BanPolicyInit = {}) {
    this.banMs = init.banMs ?? DEFAULT_BAN_MS
  }

  blockReceived(key: string, peer: string, block: Block): void {
    const id = `${key}#${block.piece}`
    let log = this.blocks.get(id)
    if (!log) this.blocks.set(id, (log = new Map()))
    let senders = log.get(block.offset)
    if (!senders) log.set(block.offset, (senders = []))
    senders.push({ peer, crc: block.crc, length: block.length })
  }

  /** Whether `pieceVerified` for this piece needs the good blocks' CRC32s to convict someone. */
  needsGoodBlocks(key: string, piece: number): boolean {
    return this.suspects.has(`${key}#${piece}`)
  }

  /** `goodBlocks`: CRC32 per block offset of the verified data, when `needsGoodBlocks` asked for it. */
  pieceVerified(key: string, piece: number, goodBlocks?: Map<number, number>, what = key): VerifiedPiece {
    const id = `${key}#${piece}`
    const log = this.blocks.get(id)
    this.blocks.delete(id)
    const sources = senders(log)
    const verifiedBytes = new Map<string, number>()
    for (const sent of log?.values() ?? []) {
      const kept = sent[sent.length - 1]
      if (kept) verifiedBytes.set(kept.peer, (verifiedBytes.get(kept.peer) ?? 0) + kept.length)
    }
    return { source: sources[sources.length - 1], verifiedBytes, bans: this.convictLiars(id, piece, goodBlocks, what) }
  }

  pieceFailed(key: string, piece: number, what = key): Ban[] {
    const id = `${key}#${piece}`
    const log = this.blocks.get(id) ?? new Map()
    this.blocks.delete(id)
    const sources = senders(log)
    if (sources.length === 1) return this.ban(sources[0]!, `sent piece ${piece} of ${what} that failed SHA-1 verification`)
    const suspect = this.suspects.get(id) ?? new Map()
    for (const [offset, sent] of log) suspect.set(offset, [...(suspect.get(offset) ?? []), ...sent])
    this.suspects.set(id, suspect)
    return []
  }

  /** Drops what was kept about a transfer's pieces once it ends. */
  forget(key: string): void {
    for (const map of [this.blocks, this.suspects]) {
      for (const id of map.keys()) if (id.startsWith(`${key}#`)) map.delete(id)
    }
  }

  isBanned(peer: string): boolean {
    const until = this.bans.get(peer)
    if (until === undefined) return false
    if (until > this.clock.now()) return true
    this.bans.delete(peer)
    return false
  }

  banned(): { peer: string; until: string }[] {
    return [...this.bans].filter(([peer]) => this.isBanned(peer)).map(([peer, until]) => ({ peer, until: new Date(until).toISOString() }))
  }

  private convictLiars(id: string, piece: number, goodBlocks: Map<number, number> | undefined, what: string): Ban[] {
    const suspect = this.suspects.get(id)
    if (!suspect || !goodBlocks) return []
    this.suspects.delete(id)
    const liars = new Set<string>()
    for (const [offset, sent] of suspect) {
      for (const { peer, crc } of sent) if (goodBlocks.get(offset) !== crc) liars.add(peer)
    }
    return [...liars].flatMap((peer) => this.ban(peer, `sent data for piece ${piece} of ${what} that differs from the verified piece`))
  }

  private ban(peer: string, reason: string): Ban[] {
    if (this.isBanned(peer)) return []
    const untilMs = this.clock.now() + this.banMs
    this.bans.set(peer, untilMs)
    return [{ peer, untilMs, reason }]
  }
}

function senders(log: BlockLog | undefined): string[] {
  const peers = new Set<string>()
  for (const sent of log?.values() ?? []) for (const { peer } of sent) peers.add(peer)
  return [...peers]
}
