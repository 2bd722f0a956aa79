import type { Torrent, Wire } from 'webtorrent'
import { offerOnly, reschedule } from './bt-internals.js'

/**
 * Which pieces a download asks holders (peers with every piece) for. Requesters that start
 * together would otherwise all take every piece from the holder, which then uploads one copy
 * per requester while they never trade. Instead the downloaders connected to a holder split
 * the pieces into stripes (all sort the same labels, so they agree): each asks holders only
 * for its own stripe, and gets the others from their owners. A piece a reader has been
 * blocked on for a while (urgent) may come from a holder whatever its stripe.
 */
export class Stripes {
  private readonly urgent = new Set<number>()
  /** Wires admitted to the download (a wire still proving the cluster key is not one yet). */
  private readonly attached = new Set<Wire>()
  /** Wires of peers that hold every piece, whose offer the stripes now filter. */
  private readonly holders = new WeakSet<Wire>()
  private count = 1
  private index = 0

  /** `wake` has webtorrent choose pieces again at once (an urgent piece may now come from a holder). */
  constructor(private readonly torrent: Torrent, private readonly self: string, private readonly label: (wire: Wire) => string,
    private readonly wake: () => void = () => reschedule(torrent)) {}

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

  private fromHolder(holder: Wire, index: number): boolean {
    if (this.urgent.has(index)) return true
    if (index % this.count !== this.index) return false
    return ![...this.attached].some((other) => other !== holder && !this.holders.has(other) && !other.peerChoking && other.peerPieces.get(index))
  }

  private restripe(): void {
    const downloaders = [this.self, ...[...this.attached].filter((wire) => !this.holders.has(wire) && !wire.destroyed).map(this.label)]
    const sorted = [...new Set(downloaders)].sort()
    this.count = sorted.length
    this.index = sorted.indexOf(this.self)
  }

  private isComplete(pieces: Wire['peerPieces']): boolean {
    const count = Math.ceil(this.torrent.length / this.torrent.pieceLength)
    for (let index = 0; index < count; index++) if (!pieces.get(index)) return false
    return true
  }
}
