import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import WebTorrent, { type Wire } from 'webtorrent'
import type { ClusterKey } from '../../src/net/cluster-key.js'
import { AUTH_HEADER, signAnswer } from '../../src/protocol/peer-auth.js'
import { authenticateWire } from '../../src/swarm/wire-auth.js'
import { METAINFO_PATH, PIECES_PATH, WIRE_PORT_HEADER } from '../../src/protocol/peer-api.js'
import { offerHttpPieces } from '../../src/swarm/http-pieces.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { StaticBootstrap } from '../../src/routing/bootstrap.js'
import { DhtRouter } from '../../src/routing/dht.js'
import type { Metainfo } from '../../src/swarm/metainfo.js'
import { encodePeerId } from '../../src/swarm/peer-id.js'
import { silentLogger } from './registry-app.js'

/**
 * A misbehaving holder: announces a blob in the DHT, hands out its correct metainfo, then
 * seeds pieces with a flipped byte. What a node with a bad disk or a broken build would do.
 * With `httpPieces` it also offers whole pieces over HTTP, corrupted the same way.
 */
export class RoguePeer {
  private client: WebTorrent | undefined
  private server: Server | undefined
  private router: DhtRouter | undefined
  /** Its wire address (its peer id). */
  readonly label: string
  /** Its registry address once started: the one name nodes give it once it answered them over HTTP. */
  node = ''
  /** Whole-piece requests its HTTP server answered. */
  pieceRequests = 0

  /** `key`: the cluster key, when the rogue is a node of the cluster (a bad disk, a broken build). */
  constructor(private readonly host: string, private readonly wirePort: number, private readonly metainfo: Metainfo, private readonly bytes: Buffer,
    private readonly key?: ClusterKey, private readonly options: { httpPieces?: boolean } = {}) {
    this.label = `${host}:${wirePort}`
  }

  async start(bootstrap: { host: string; port: number }, dhtPort: number): Promise<void> {
    const { metainfo, bytes } = this
    const client = new WebTorrent({ peerId: encodePeerId(this.host, this.wirePort), torrentPort: this.wirePort, dht: false, tracker: false, lsd: false,
      utPex: false, natUpnp: false, natPmp: false, utp: false, webSeeds: false, secure: 0 })
    this.client = client
    await new Promise<void>((resolve) => client.once('listening', () => resolve()))
    class CorruptStore {
      get(index: number, opts: { offset?: number; length?: number } | null | ((err: Error | null, data?: Buffer) => void), cb?: (err: Error | null, data?: Buffer) => void): void {
        const callback = typeof opts === 'function' ? opts : cb!
        const range = typeof opts === 'function' || !opts ? {} : opts
        const start = index * metainfo.pieceLength + (range.offset ?? 0)
        const piece = Buffer.from(bytes.subarray(start, start + (range.length ?? metainfo.pieceLength)))
        piece[0] = piece[0]! ^ 0xff
        queueMicrotask(() => callback(null, piece))
      }
      put(_index: number, _data: Buffer, cb: (err: Error | null) => void): void { cb(new Error('read-only')) }
      close(cb?: () => void): void { cb?.() }
      destroy(cb?: () => void): void { cb?.() }
    }
    this.server = createServer((req, res) => this.answer(req, res))
    await new Promise<void>((resolve) => this.server!.listen(0, this.host, () => resolve()))
    const httpPort = (this.server.address() as { port: number }).port
    this.node = `${this.host}:${httpPort}`
    const torrent = client.add(metainfo.torrent, { store: CorruptStore, skipVerify: true, announce: [], storeCacheSlots: 0 })
    if (this.options.httpPieces) torrent.on('wire', (wire: Wire) => offerHttpPieces(wire, httpPort))
    const key = this.key
    if (key) torrent.on('wire', (wire: Wire) => authenticateWire(wire, { key, infoHash: metainfo.infoHash, peerId: client.peerId, onProven: () => {}, onRefused: () => {} }))
    await new Promise<void>((resolve) => torrent.once('ready', () => resolve()))
    this.router = new DhtRouter({ bootstrap: new StaticBootstrap([bootstrap]), logger: silentLogger, metrics: createMetricsRegistry().metrics },
      { listen: { host: this.host, port: dhtPort }, announcePort: () => httpPort, bootstrapRefreshMs: 500, clusterKey: this.key })
    await this.router.start()
    this.router.advertise([metainfo.digest])
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const { metainfo, bytes } = this
    const range = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''))
    if (req.url === `${METAINFO_PATH}${metainfo.digest}`) {
      res.writeHead(200, this.signed(req, 200, { [WIRE_PORT_HEADER]: String(this.wirePort), 'content-type': 'application/x-bittorrent', 'content-length': String(metainfo.torrent.length) }))
      res.end(metainfo.torrent)
    } else if (req.method === 'HEAD' && req.url?.includes(`/blobs/${metainfo.digest}`)) {
      res.writeHead(200, this.signed(req, 200, { 'content-length': String(metainfo.length) }))
      res.end()
    } else if (this.options.httpPieces && req.url === `${PIECES_PATH}${metainfo.digest}` && range) {
      this.pieceRequests++
      const [start, end] = [Number(range[1]), Number(range[2])]
      const body = Buffer.from(bytes.subarray(start, end + 1))
      body[0] = body[0]! ^ 0xff
      res.writeHead(206, this.signed(req, 206, { 'content-range': `bytes ${start}-${end}/${metainfo.length}`, 'content-length': String(body.length) }))
      res.end(body)
    } else {
      res.writeHead(404)
      res.end()
    }
  }

  /** With the key: the answer's headers plus its Shoal-Auth tag, as a node's would carry. */
  private signed(request: IncomingMessage, status: number, headers: Record<string, string>): Record<string, string> {
    const nonce = String(request.headers[AUTH_HEADER.toLowerCase()] ?? '').split(' ')[2]
    if (!this.key || !nonce) return headers
    return { ...headers, [AUTH_HEADER]: signAnswer(this.key, nonce, status, (name) => Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1]) }
  }

  async stop(): Promise<void> {
    await this.router?.stop()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => (this.client ? this.client.destroy(() => resolve()) : resolve()))
  }
}
