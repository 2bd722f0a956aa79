declare module 'bittorrent-protocol' {
  import { Duplex } from 'node:stream'

  /**
   * bittorrent-protocol's Wire: the public state and methods of its README that shoal uses. Its
   * private members are typed and touched only in swarm/bt-internals.ts.
   */
  export default class Wire extends Duplex {
    peerId: string
    type: string
    downloaded: number
    uploaded: number
    amChoking: boolean
    amInterested: boolean
    peerChoking: boolean
    peerInterested: boolean
    peerPieces: { get(index: number): boolean; set(index: number, value?: boolean): void }
    /** Block requests this side sent and awaits. */
    requests: unknown[]
    /** Block requests the peer sent and awaits. */
    peerRequests: unknown[]
    extendedHandshake: Record<string, unknown>
    peerExtendedHandshake: Record<string, unknown>
    handshake(infoHash: string, peerId: string, extensions?: Record<string, boolean>): void
    choke(): void
    unchoke(): void
    interested(): void
    request(piece: number, offset: number, length: number, callback: (err: Error | null, block?: Uint8Array) => void): void
    piece(index: number, offset: number, buffer: Uint8Array): void
    setTimeout(ms: number, unref?: boolean): void
    use(extension: new (wire: Wire) => { onMessage?(message: Uint8Array): void }): void
    extended(name: string, message: Uint8Array): void
    downloadSpeed(): number
    uploadSpeed(): number
    destroy(): this
  }
}
