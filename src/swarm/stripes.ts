import type { Torrent, Wire } from 'webtorrent'

interface PieceSet {
  get(index: number): boolean
  set(index: number, value?: boolean): void
  buffer: Uint8Array
}

type PeerWire = Wire & { peerPieces: PieceSet; peerChoking: boolean; holderView?: true }

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
  private readonly attached = new Set<PeerWire>()
  private count = 1
  private index = 0

  constructor(private readonly torrent: Torrent, private readonly self: string, private readonly label: (wire: Wire) => string) {}

  /** Called for every new wire of the download: hides from holders' wires what others can give. */
  attach(wire: Wire): void {
    const peer = wire as PeerWire
    this.attached.add(peer)
    const wrapIfHolder = (): void => {
      const pieces = peer.peerPieces
      if (!peer.holderView && this.isComplete(pieces)) {
        peer.holderView = true
        peer.peerPieces = {
          get: (index) => pieces.get(index) && this.fromHolder(peer, index),
          set: (index, value) => pieces.set(index, value),
          get buffer() { return pieces.buffer },
        }
      }
      this.restripe()
    }
    wrapIfHolder()
    wire.on('bitfield', wrapIfHolder)
    wire.on('have-all', wrapIfHolder)
    wire.on('have', wrapIfHolder)
    wire.once('close', () => {
      this.attached.delete(peer)
      this.restripe()
    })
  }

  markUrgent(piece: number): void {
    if (this.urgent.has(piece)) return
    this.urgent.add(piece)
    ;(this.torrent as unknown as { _update(): void })._update()
  }

  private fromHolder(holder: PeerWire, index: number): boolean {
    if (this.urgent.has(index)) return true
    if (index % this.count !== this.index) return false
    return ![...this.attached].some((other) => other !== holder && !other.holderView && !other.peerChoking && other.peerPieces.get(index))
  }

  private restripe(): void {
    const downloaders = [this.self, ...[...this.attached].filter((wire) => !wire.holderView && !(wire as { destroyed?: boolean }).destroyed).map(this.label)]
    const sorted = [...new Set(downloaders)].sort()
    this.count = sorted.length
    this.index = sorted.indexOf(this.self)
  }

  private isComplete(pieces: PieceSet): boolean {
    const count = Math.ceil(this.torrent.length / this.torrent.pieceLength)
    for (let index = 0; index < count; index++) if (!pieces.get(index)) return false
    return true
  }
}
