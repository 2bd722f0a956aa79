import { createHash, randomBytes } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import bencode from 'bencode'
import DHT from 'bittorrent-dht'
import WebTorrent from 'webtorrent'
import type { Digest } from '../../src/oci/digest.js'
import { buildMetainfo, pieceLengthFor, type Metainfo } from '../../src/swarm/metainfo.js'
import type { LoopbackNode } from './cluster.js'
import { eventually } from './eventually.js'
import { RawWire } from './raw-wire.js'

/**
 * An attacker without the cluster key, on its own loopback address, built only from public
 * libraries and the protocol's facts (DHT targets are SHA-1 of the key; the metainfo layout):
 * it announces keys in the DHT, answers the peer HTTP API as it likes, seeds torrents, and
 * sends raw KRPC and BitTorrent traffic.
 */
export class Rogue {
  private dht: DHT | undefined
  private server: Server | undefined
  private client: WebTorrent | undefined
  private readonly sockets: Socket[] = []
  httpPort = 0
  /** Every request its HTTP server got (method and path): whether anybody asked it anything. */
  readonly requests: string[] = []
  private routes = new Map<string, (request: IncomingMessage, response: ServerResponse) => void>()

  constructor(readonly host: string) {}

  async start(bootstrap: LoopbackNode): Promise<void> {
    this.server = createServer((request, response) => {
      this.requests.push(`${request.method} ${request.url}`)
      const route = [...this.routes].find(([prefix]) => request.url?.startsWith(prefix))
      if (route) route[1](request, response)
      else response.writeHead(404).end()
    })
    await new Promise<void>((resolve) => this.server!.listen(0, this.host, () => resolve()))
    this.httpPort = (this.server.address() as { port: number }).port
    const dht = this.dht = new DHT({ bootstrap: [bootstrap.p2p], timeout: 500 })
    await new Promise<void>((resolve) => dht.listen(0, this.host, () => resolve()))
  }

  /** Answers requests whose path starts with `prefix`. */
  route(prefix: string, handler: (request: IncomingMessage, response: ServerResponse) => void): void {
    this.routes.set(prefix, handler)
  }

  /** Announces "I hold `key`" (with its HTTP port) to the nodes closest to it; resolves once sent or failed. */
  announce(key: string): Promise<void> {
    const target = createHash('sha1').update(key).digest()
    return new Promise((resolve) => this.dht!.announce(target, this.httpPort, () => resolve()))
  }

  /** Seeds a torrent from bytes it chooses, on a wire port of its own; returns the port. */
  async seed(metainfo: Metainfo, bytes: Buffer): Promise<number> {
    const client = this.client ??= new WebTorrent({ dht: false, tracker: false, lsd: false, utPex: false, natUpnp: false, natPmp: false, utp: false, webSeeds: false, secure: 0 })
    await new Promise<void>((resolve) => (client.listening ? resolve() : client.once('listening', () => resolve())))
    const torrent = client.add(metainfo.torrent, { announce: [], store: memoryStore(bytes, metainfo.pieceLength), skipVerify: true, storeCacheSlots: 0 })
    await new Promise<void>((resolve) => torrent.once('ready', () => resolve()))
    return client.address()!.port
  }

  /** `count` queries from random node ids that will never answer a ping. */
  async fakeNodeIds(node: LoopbackNode, count: number, perSecond: number): Promise<void> {
    const socket = await this.socket()
    const [host, port] = node.p2p.split(':') as [string, string]
    for (let sent = 0; sent < count; sent += perSecond / 10) {
      for (let index = 0; index < perSecond / 10; index++) {
        socket.send(bencode.encode({ t: randomBytes(2), y: 'q', q: 'ping', a: { id: randomBytes(20) } }), Number(port), host)
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  /** Asks `node` for a token, then sends `count` announce_peer for random infohashes with it. */
  async floodAnnounces(node: LoopbackNode, count: number): Promise<void> {
    const socket = await this.socket()
    const [host, port] = node.p2p.split(':') as [string, string]
    let token: Uint8Array | undefined
    socket.on('message', (message: Buffer) => {
      try {
        token ??= (bencode.decode(message) as { r?: { token?: Uint8Array } }).r?.token
      } catch { /* not for us */ }
    })
    const id = randomBytes(20)
    socket.send(bencode.encode({ t: 'tk', y: 'q', q: 'get_peers', a: { id, info_hash: randomBytes(20) } }), Number(port), host)
    await eventually('a token (none: the node does not answer strangers)', () => token !== undefined, 2_000, 20).catch(() => {})
    for (let sent = 0; sent < count; sent += 500) {
      for (let index = 0; index < 500; index++) {
        socket.send(bencode.encode({ t: 'an', y: 'q', q: 'announce_peer', a: { id, info_hash: randomBytes(20), port: 1 + (sent + index) % 60_000, token: token ?? randomBytes(4) } }), Number(port), host)
      }
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  /**
   * Connects to a wire port claiming `peerId` (none: a fresh one of its own), handshakes for
   * `infoHash` without any proof of a key, says it is interested and asks for the first block:
   * what a peer gets that way.
   */
  async impersonate(host: string, port: number, infoHash: string, peerId?: Buffer): Promise<{ unchoked: boolean; pieces: number; closed: boolean }> {
    const wire = await RawWire.open(host, port, infoHash, peerId)
    try {
      return await wire.requestFirstBlock()
    } finally {
      wire.close()
    }
  }

  private async socket(): Promise<Socket> {
    const socket = createSocket('udp4')
    this.sockets.push(socket)
    await new Promise<void>((resolve) => socket.bind(0, this.host, () => resolve()))
    return socket
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.close()
    await new Promise<void>((resolve) => (this.dht ? this.dht.destroy(() => resolve()) : resolve()))
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
    await new Promise<void>((resolve) => (this.client ? this.client.destroy(() => resolve()) : resolve()))
  }
}

/** A read-only chunk store over bytes, as webtorrent's `store` option takes it. */
function memoryStore(bytes: Buffer, pieceLength: number) {
  return class {
    get(index: number, opts: { offset?: number; length?: number } | null | ((err: Error | null, data?: Buffer) => void), cb?: (err: Error | null, data?: Buffer) => void): void {
      const callback = typeof opts === 'function' ? opts : cb!
      const range = typeof opts === 'function' || !opts ? {} : opts
      const start = index * pieceLength + (range.offset ?? 0)
      queueMicrotask(() => callback(null, Buffer.from(bytes.subarray(start, start + (range.length ?? pieceLength)))))
    }
    put(_index: number, _data: Buffer, cb: (err: Error | null) => void): void { cb(new Error('read-only')) }
    close(cb?: () => void): void { cb?.() }
    destroy(cb?: () => void): void { cb?.() }
  }
}

export interface PullOutcome {
  status: number
  /** True if the body ended as HTTP says a complete answer ends; false if the connection was cut. */
  clean: boolean
  digest: string
  bytes: number
}

/** A GET through a node's mirror, hashing what arrives and telling a clean end from a cut. */
export async function pullOutcome(node: LoopbackNode, path: string, range?: string): Promise<PullOutcome> {
  const response = await fetch(`${node.shoal.registryUrl}${path}${path.includes('?') ? '&' : '?'}ns=registry.test`, { headers: range ? { range } : {} })
  const hash = createHash('sha256')
  let bytes = 0
  let clean = true
  try {
    for await (const chunk of (response.body ?? []) as AsyncIterable<Uint8Array>) {
      hash.update(chunk)
      bytes += chunk.length
    }
  } catch {
    clean = false
  }
  return { status: response.status, clean, digest: `sha256:${hash.digest('hex')}` as Digest, bytes }
}

/** Metainfo that names `digest` but describes `bytes` (piece hashes and length), as a forger makes it. */
export function forgeMetainfo(digest: Digest, bytes: Buffer): Metainfo {
  const pieceLength = pieceLengthFor(bytes.length)
  const hashes: Buffer[] = []
  for (let offset = 0; offset < bytes.length; offset += pieceLength) hashes.push(createHash('sha1').update(bytes.subarray(offset, offset + pieceLength)).digest())
  return buildMetainfo(digest, bytes.length, Buffer.concat(hashes))
}
