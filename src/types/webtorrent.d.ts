declare module 'webtorrent' {
  import { EventEmitter } from 'node:events'
  import type { Transform } from 'node:stream'
  import type BittorrentWire from 'bittorrent-protocol'

  /** A bittorrent-protocol wire as webtorrent hands it over: with the peer's address and how it connected. */
  export interface Wire extends BittorrentWire {
    remoteAddress: string
    remotePort: number
  }

  export interface Torrent extends EventEmitter {
    infoHash: string
    length: number
    pieceLength: number
    downloaded: number
    uploaded: number
    done: boolean
    destroyed: boolean
    ready: boolean
    wires: Wire[]
    numPeers: number
    bitfield: { get(index: number): boolean }
    addPeer(peer: string): boolean
    removePeer(peer: string | Wire): void
    critical(start: number, end: number): void
    select(start: number, end: number, priority?: number): void
    destroy(opts?: { destroyStore?: boolean }, callback?: (err?: Error) => void): void
  }

  export interface AddOptions {
    store?: unknown
    skipVerify?: boolean
    strategy?: 'sequential' | 'rarest'
    announce?: string[]
    bitfield?: Uint8Array
    storeCacheSlots?: number
    destroyStoreOnDestroy?: boolean
    uploads?: number
    alwaysChokeSeeders?: boolean
    maxWebConns?: number
    path?: string
  }

  export interface ClientOptions {
    peerId?: string | Uint8Array
    torrentPort?: number
    dht?: boolean
    tracker?: boolean
    lsd?: boolean
    utPex?: boolean
    natUpnp?: boolean
    natPmp?: boolean
    utp?: boolean
    webSeeds?: boolean
    secure?: number
    maxConns?: number
    uploadLimit?: number
    downloadLimit?: number
    seedOutgoingConnections?: boolean
  }

  export default class WebTorrent extends EventEmitter {
    constructor(options?: ClientOptions)
    readonly peerId: string
    readonly torrentPort: number
    readonly listening: boolean
    readonly torrents: Torrent[]
    readonly throttleGroups: { up: { throttle(): Transform }; down: { throttle(): Transform } }
    add(torrent: Uint8Array, options: AddOptions, onTorrent?: (torrent: Torrent) => void): Torrent
    throttleUpload(rate: number): void
    address(): { address: string; port: number } | null
    destroy(callback?: (err?: Error) => void): void
  }
}
