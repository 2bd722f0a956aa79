import type { Logger } from 'pino'
import type { Torrent, Wire } from 'webtorrent'
import type { ClusterKey } from '../net/cluster-key.js'
import type { FaultKind, LedgerEvent } from '../observe/ledger.js'
import type { Metrics } from '../observe/metrics.js'
import type { BanPolicy } from './ban-policy.js'
import { gateIncoming } from './bt-internals.js'
import { afterExtendedHandshake } from './extended-handshake.js'
import { fetchesOverHttp, fetchPiecesOverHttp, offerHttpPieces, offeredHttpPort, type HttpPiecesInit, type PieceFetcher } from './http-pieces.js'
import type { Metainfo } from './metainfo.js'
import type { PieceVerifier } from './piece-verifier.js'
import type { Stripes } from './stripes.js'
import { authenticateWire } from './wire-auth.js'
import type { WireGuard } from './wire-guard.js'
import { acceptPeerIdentity, announceNode, announcedNode, peerLabel } from './wire-label.js'
import type { NodeReputation } from '../net/node-reputation.js'

export interface PeerWiresComponents {
  bans: BanPolicy
  guard: WireGuard
  metrics: Metrics
  logger: Logger
  emit: (event: LedgerEvent) => void
  /** Fetches whole pieces from peers that offer them over HTTP; none: 16 KiB blocks only. */
  pieces?: PieceFetcher | undefined
  /** Checks whole pieces fetched over HTTP off the main thread; none: webtorrent checks them. */
  verifier?: PieceVerifier | undefined
  /** The node's piece memory, which whole-piece fetches wait for room in; none: no limit. */
  pieceMemory?: HttpPiecesInit['memory']
  /** The port this node serves whole pieces on (its registry API); none: not offered. */
  httpPort?: (() => number) | undefined
  /** The port of this node's registry API, told to peers so they know one node by one name. */
  registryPort?: (() => number) | undefined
  /** Learns which wire address is which node, and whether that node is banned. */
  reputation?: NodeReputation | undefined
}

/** BitTorrent connections one blob's swarm keeps at once, incoming and outgoing; more are refused. */
export const DEFAULT_MAX_WIRES_PER_SWARM = 128
/** BitTorrent connections this node keeps at once over all blobs; more are refused. */
export const DEFAULT_MAX_WIRES = 1024

export interface PeerWiresInit {
  /** This node's `host:port`, which decides which of two duplicate connections stays. */
  label: string
  /** This node's peer id (hex). */
  peerId: string
  /** With a key, a wire joins only once the peer proved it; none: an open swarm. */
  clusterKey?: ClusterKey | undefined
  maxWiresPerSwarm?: number
  maxWires?: number
}

/** The transfer a wire belongs to. */
export interface WireOwner {
  key: string
  metainfo: Metainfo
  /** Whether this node downloads the blob (and so requests pieces). */
  downloads: boolean
  torrent: Torrent
  stripes?: Stripes | undefined
  touch(): void
}

/** Admits the BitTorrent connections of a torrent: cluster key, bans, duplicates, guard and accounting. */
export class PeerWires {
  private live = 0

  constructor(private readonly components: PeerWiresComponents, private readonly init: PeerWiresInit) {}

  /** Wires open now, over all swarms. */
  get open(): number {
    return this.live
  }

  /**
   * The wire's patches, in this order (see swarm/bt-internals.ts): the request cap goes out in
   * the extended handshake at once, which also keeps the first fast requester from taking nearly
   * all of a holder's upload; one gate then asks the key proof, then the cap, of every request
   * and piece; whole-piece requests and stripes come with admission.
   */
  onWire(owner: WireOwner, wire: Wire): void {
    if (this.refusedOverCap(owner.torrent, wire)) return
    this.live++
    wire.once('close', () => this.live--)
    const { guard } = this.components
    guard.attach(wire)
    outgoing.set(wire, wire.type === 'tcpOutgoing')
    if (this.components.httpPort) offerHttpPieces(wire, this.components.httpPort())
    if (this.components.registryPort) announceNode(wire, this.components.registryPort())
    const key = this.init.clusterKey
    const proof = key && authenticateWire(wire, {
      key, infoHash: owner.torrent.infoHash, peerId: this.init.peerId,
      onProven: () => {
        acceptPeerIdentity(wire)
        this.admit(owner, wire)
      },
      onRefused: (_, why) => this.dropped(wire, 'peer-unauthenticated', why),
    })
    gateIncoming(wire, (message) => (!proof || proof.admits(message)) && (message !== 'request' || guard.admitsRequest(wire)))
    if (proof) return
    acceptPeerIdentity(wire)
    this.admit(owner, wire)
  }

  /** The torrent's list already holds the new wire when webtorrent announces it. */
  private refusedOverCap(torrent: Torrent, wire: Wire): boolean {
    const perSwarm = this.init.maxWiresPerSwarm ?? DEFAULT_MAX_WIRES_PER_SWARM
    const perNode = this.init.maxWires ?? DEFAULT_MAX_WIRES
    const why = torrent.wires.length > perSwarm ? `this blob's swarm already has ${perSwarm} connections, the most it keeps`
      : this.live >= perNode ? `this node already has ${perNode} connections, the most it keeps` : undefined
    if (!why) return false
    this.dropped(wire, 'wires-full', why)
    wire.destroy()
    return true
  }

  dropped(wire: Wire, kind: FaultKind, detail: string): void {
    const peer = peerLabel(wire)
    this.components.metrics.swarmWireDrops.inc({ reason: kind })
    this.components.emit({ type: 'fault', kind, detail: `${peer}: ${detail}` })
    const level = kind === 'peer-idle' || kind === 'wires-full' ? 'debug' : 'warn'
    this.components.logger[level]({ peer, reason: kind, detail }, 'dropped a BitTorrent connection')
  }

  private admit(owner: WireOwner, wire: Wire): void {
    const peer = peerLabel(wire)
    if (this.components.bans.isBanned(peer) || wire.destroyed) {
      wire.destroy()
      return
    }
    if (this.dropDuplicate(owner.torrent, wire, peer)) return
    this.learnNode(wire)
    owner.stripes?.attach(wire)
    this.requestWholePieces(owner, wire, peer)
    const { key } = owner
    const { metrics, emit, bans } = this.components
    metrics.swarmPeersConnected.inc()
    emit({ type: 'peer-connected', key, peer })
    wire.on('piece', (piece: number, offset: number, block: Uint8Array) => {
      metrics.peerBytes.inc({ direction: 'down', via: fetchesOverHttp(wire) ? 'http-pieces' : 'wire' }, block.length)
      emit({ type: 'bytes-received', key, peer, bytes: block.length })
      bans.blockReceived(key, peer, { piece, offset, data: block })
    })
    wire.on('upload', (bytes: number) => {
      owner.touch()
      metrics.peerBytes.inc({ direction: 'up', via: 'wire' }, bytes)
      emit({ type: 'bytes-sent', key, peer, bytes })
    })
    wire.once('close', () => {
      metrics.swarmPeersConnected.dec()
      emit({ type: 'peer-disconnected', key, peer })
    })
  }

  /** Once the peer said which node it is: its wire address is that node's alias, and a ban of the node closes the wire. */
  private learnNode(wire: Wire): void {
    const reputation = this.components.reputation
    if (!reputation) return
    afterExtendedHandshake(wire, () => {
      const node = announcedNode(wire)
      if (!node) return
      reputation.sameNode(peerLabel(wire), node)
      if (reputation.isBanned(node)) wire.destroy()
    })
  }

  /** A peer that offered whole pieces over HTTP (in its extended handshake) gets this node's requests that way. */
  private requestWholePieces(owner: WireOwner, wire: Wire, peer: string): void {
    const fetcher = this.components.pieces
    if (!owner.downloads || !fetcher) return
    afterExtendedHandshake(wire, () => {
      const port = offeredHttpPort(wire)
      if (port === undefined) return
      const { metainfo, torrent } = owner
      const { verifier, metrics, pieceMemory } = this.components
      fetchPiecesOverHttp(wire, {
        metainfo, torrent, fetcher, port, verifier, memory: pieceMemory,
        onChecked: (matches) => metrics.swarmPiecesCheckedOnWorker.inc({ result: matches ? 'verified' : 'failed' }),
        onFallback: (err) => this.components.logger.warn({ peer, digest: metainfo.digest, err }, 'whole-piece request over HTTP failed; asking this peer for blocks over the wire instead'),
      })
    })
  }

  /**
   * Two nodes that found each other both dial; both sides keep the connection opened by the
   * node with the lower address, so exactly one remains.
   */
  private dropDuplicate(torrent: Torrent, wire: Wire, peer: string): boolean {
    const other = torrent.wires.find((candidate) => candidate !== wire && peerLabel(candidate) === peer)
    if (!other) return false
    const keepOutgoing = this.init.label < peer
    const drop = isOutgoing(wire) === keepOutgoing ? other : wire
    if (isOutgoing(drop)) torrent.removePeer(`${drop.remoteAddress}:${drop.remotePort}`)
    else drop.destroy()
    return drop === wire
  }
}

/** Whether this node dialled a wire, noted before whole-piece requests relabel it `webSeed`. */
const outgoing = new WeakMap<Wire, boolean>()

function isOutgoing(wire: Wire): boolean {
  return outgoing.get(wire) ?? wire.type === 'tcpOutgoing'
}
