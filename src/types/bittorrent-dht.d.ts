declare module 'bittorrent-dht' {
  import { EventEmitter } from 'node:events'
  interface DhtNode { id?: Uint8Array; host: string; port: number }
  interface DhtOptions {
    bootstrap?: false | string[]
    maxAge?: number
    maxPeers?: number
    maxTables?: number
    maxValues?: number
    timeBucketOutdated?: number
    krpc?: unknown
    nodeId?: Uint8Array | string
    host?: string
    concurrency?: number
    timeout?: number
    socket?: unknown
  }
  export default class DHT extends EventEmitter {
    constructor(options?: DhtOptions)
    readonly ready: boolean
    readonly listening: boolean
    readonly nodeId: Uint8Array
    readonly nodes: { count(): number; toArray(): DhtNode[] }
    listen(port: number, address: string | undefined, callback?: () => void): void
    address(): { address: string; port: number; family: string }
    announce(infoHash: Uint8Array | string, port: number, callback?: (err?: Error) => void): void
    lookup(infoHash: Uint8Array | string, callback?: (err: Error | null, nodes?: number) => void): () => void
    addNode(node: DhtNode): void
    destroy(callback?: () => void): void
    toJSON(): { nodes: DhtNode[]; values: Record<string, unknown> }
  }
}
