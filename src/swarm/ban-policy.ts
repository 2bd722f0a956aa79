import { crc32 } from 'node:zlib'
import { NodeReputation } from '../net/node-reputation.js'

/** One block of a piece as received (16 KiB over the wire, or the rest of the piece over HTTP). */
export interface Block {
  piece: number
  offset: number
  data: Uint8Array
}

export interface Ban {
  peer: string
  forMs: number
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

/** Senders of each block offset; the bytes are kept only while the piece is assembled. */
type BlockLog = Map<number, { peer: string; data: Uint8Array }[]>
/** What a failed piece's senders sent, as a CRC32 per span: computed only once a piece failed. */
type SuspectLog = Map<number, { peer: string; length: number; crc: number }[]>

/**
 * Who sent which block of the pieces being assembled, and who is banned for sending bad ones.
 * A failed piece from one sender convicts it. With several senders, their blocks are kept until
 * the piece verifies; then the ones whose blocks differ from the good data are banned.
 */
export class BanPolicy {
  /** Blocks of pieces being assembled, by `key#piece`. */
  private readonly blocks = new Map<string, BlockLog>()
  /** Blocks of pieces that failed with several senders, kept until a good copy shows who lied. */
  private readonly suspects = new Map<string, SuspectLog>()
  private readonly banMs: number

  /** `reputation`: the node's one ban list, shared with the mirror's holder health. */
  constructor(private readonly reputation: NodeReputation = new NodeReputation(), init: BanPolicyInit = {}) {
    this.banMs = init.banMs ?? DEFAULT_BAN_MS
  }

  blockReceived(key: string, peer: string, block: Block): void {
    const id = `${key}#${block.piece}`
    let log = this.blocks.get(id)
    if (!log) this.blocks.set(id, (log = new Map()))
    let senders = log.get(block.offset)
    if (!senders) log.set(block.offset, (senders = []))
    senders.push({ peer, data: block.data })
  }

  /** Whether `pieceVerified` for this piece needs the verified piece's bytes to convict someone. */
  needsVerifiedPiece(key: string, piece: number): boolean {
    return this.suspects.has(`${key}#${piece}`)
  }

  /** `verifiedPiece`: the piece's verified bytes, when `needsVerifiedPiece` asked for them. */
  pieceVerified(key: string, piece: number, verifiedPiece?: Uint8Array, what = key): VerifiedPiece {
    const id = `${key}#${piece}`
    const log = this.blocks.get(id)
    this.blocks.delete(id)
    const sources = senders(log)
    const verifiedBytes = new Map<string, number>()
    for (const sent of log?.values() ?? []) {
      const kept = sent[sent.length - 1]
      if (kept) verifiedBytes.set(kept.peer, (verifiedBytes.get(kept.peer) ?? 0) + kept.data.length)
    }
    return { source: sources[sources.length - 1], verifiedBytes, bans: this.convictLiars(id, piece, verifiedPiece, what) }
  }

  pieceFailed(key: string, piece: number, what = key): Ban[] {
    const id = `${key}#${piece}`
    const log = this.blocks.get(id) ?? (new Map() as BlockLog)
    this.blocks.delete(id)
    const sources = senders(log)
    if (sources.length === 1) return this.ban(sources[0]!, `sent piece ${piece} of ${what} that failed SHA-1 verification`)
    const suspect = this.suspects.get(id) ?? (new Map() as SuspectLog)
    for (const [offset, sent] of log) {
      const spans = sent.map(({ peer, data }) => ({ peer, length: data.length, crc: crc32(data) }))
      suspect.set(offset, [...(suspect.get(offset) ?? []), ...spans])
    }
    this.suspects.set(id, suspect)
    return []
  }

  /** Drops what was kept about a transfer's pieces once it ends. */
  forget(key: string): void {
    for (const map of [this.blocks, this.suspects]) {
      for (const id of map.keys()) if (id.startsWith(`${key}#`)) map.delete(id)
    }
  }

  /** Whether the node behind this wire label is banned, for whatever it did over the wire or HTTP. */
  isBanned(peer: string): boolean {
    return this.reputation.isBanned(peer)
  }

  private convictLiars(id: string, piece: number, verifiedPiece: Uint8Array | undefined, what: string): Ban[] {
    const suspect = this.suspects.get(id)
    if (!suspect || !verifiedPiece) return []
    this.suspects.delete(id)
    const liars = new Set<string>()
    for (const [offset, sent] of suspect) {
      for (const { peer, length, crc } of sent) {
        if (offset + length > verifiedPiece.length || crc32(verifiedPiece.subarray(offset, offset + length)) !== crc) liars.add(peer)
      }
    }
    return [...liars].flatMap((peer) => this.ban(peer, `sent data for piece ${piece} of ${what} that differs from the verified piece`))
  }

  private ban(peer: string, reason: string): Ban[] {
    if (!this.reputation.ban(peer, this.banMs)) return []
    return [{ peer, forMs: this.banMs, reason }]
  }
}

function senders(log: BlockLog | undefined): string[] {
  const peers = new Set<string>()
  for (const sent of log?.values() ?? []) for (const { peer } of sent) peers.add(peer)
  return [...peers]
}
