import type { Torrent, Wire } from 'webtorrent'
import { offerOnly, reschedule } from './bt-internals.js'

/**
 * Which pieces a download asks holders (peers with every piece) for. Requesters that start
 * together would otherwise all take every piece from the holder, which then uploads one copy
 * per requester while they never trade. Instead each piece has one owner among the
 * downloaders: the one whose label weighs most for that piece (rendezvous hashing). Each
 * downloader asks holders only for the pieces it owns among the downloaders it knows, and gets
 * the others from their owners. Nodes see different sets of downloaders, but a piece's owner
 * over all of them also owns it in its own view, so no piece is left to nobody (at worst two
 * take it). A piece a reader has been blocked on for a while (urgent) may come from a holder
 * whoever owns it.
 */
export class Stripes {
  private readonly urgent = new Set<number>()
  /** Wires admitted to the download (a wire still proving the cluster key is not one yet). */
  private readonly attached = new Set<Wire>()
  /** Wires of peers that hold every piece, whose offer the stripes now filter. */
  private readonly holders = new WeakSet<Wire>()
  /** This node and the downloaders attached, each with the seed of its weights. */
  private downloaders: { label: string; seed: number }[]

  /** `wake` has webtorrent choose pieces again at once (an urgent piece may now come from a holder). */
  constructor(private readonly torrent: Torrent, private readonly self: string, private readonly label: (wire: Wire) => string,
    private readonly wake: () => void = () => reschedule(torrent)) {
    this.downloaders = [{ label: self, seed: labelSeed(self) }]
  }

  /** Called for every new wire of the download: hides from holders' wires what others can give. */
  attach(wire: Wire): void {
    this.attached.add(wire)
    const wrapIfHolder = (): void => {
      if (!this.holders.has(wire) && this.isComplete(wire.peerPieces)) {
        this.holders.add(wire)
        offerOnly(wire, (index) => this.fromHolder(wire, index))
      }
      this.restripe()
    }
    wrapIfHolder()
    wire.on('bitfield', wrapIfHolder)
    wire.on('have-all', wrapIfHolder)
    wire.on('have', wrapIfHolder)
    wire.once('close', () => {
      this.attached.delete(wire)
      this.restripe()
    })
  }

  markUrgent(piece: number): void {
    if (this.urgent.has(piece)) return
    this.urgent.add(piece)
    this.wake()
  }

  /** Asked for every piece and holder each time webtorrent picks pieces: allocates nothing. */
  private fromHolder(holder: Wire, index: number): boolean {
    if (this.urgent.has(index)) return true
    if (this.owner(index) !== this.self) return false
    for (const other of this.attached) {
      if (other !== holder && !this.holders.has(other) && !other.peerChoking && other.peerPieces.get(index)) return false
    }
    return true
  }

  private restripe(): void {
    const labels = new Set([this.self, ...[...this.attached].filter((wire) => !this.holders.has(wire) && !wire.destroyed).map(this.label)])
    this.downloaders = [...labels].map((label) => ({ label, seed: labelSeed(label) }))
  }

  /** The downloader that weighs most for `piece`; ties (rare) go to the lower label, as every node breaks them. */
  private owner(piece: number): string {
    let best = this.downloaders[0]!
    let bestWeight = pieceWeight(best.seed, piece)
    for (const candidate of this.downloaders) {
      const weight = pieceWeight(candidate.seed, piece)
      if (weight > bestWeight || (weight === bestWeight && candidate.label < best.label)) {
        best = candidate
        bestWeight = weight
      }
    }
    return best.label
  }

  private isComplete(pieces: Wire['peerPieces']): boolean {
    const count = Math.ceil(this.torrent.length / this.torrent.pieceLength)
    for (let index = 0; index < count; index++) if (!pieces.get(index)) return false
    return true
  }
}

/** FNV-1a of a label: the seed of its weights. */
function labelSeed(label: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < label.length; i++) hash = Math.imul(hash ^ label.charCodeAt(i), 0x01000193)
  return hash >>> 0
}

/** A well-mixed 32-bit weight of a downloader for a piece (murmur3's finaliser over seed and index). */
function pieceWeight(seed: number, piece: number): number {
  let x = (seed ^ Math.imul(piece + 1, 0x9e3779b1)) >>> 0
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}
