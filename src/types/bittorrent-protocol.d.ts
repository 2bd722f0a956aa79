declare module 'bittorrent-protocol' {
  import { Duplex } from 'node:stream'

  /** The BitTorrent wire protocol as webtorrent uses it (only what shoal's tests call). */
  export default class Wire extends Duplex {
    peerId: string
    handshake(infoHash: string, peerId: string, extensions?: Record<string, boolean>): void
    request(piece: number, offset: number, length: number, callback: (err: Error | null, block?: Uint8Array) => void): void
    destroy(): this
  }
}
