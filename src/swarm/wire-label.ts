import type { Wire } from 'webtorrent'
import type { Download } from './download.js'
import { decodePeerId } from './peer-id.js'
import { handshakePort } from './extended-handshake.js'

/** The bytes of a verified piece, read back from the download file (only to convict a liar). */
export function readVerifiedPiece(download: Download, piece: number): Promise<Buffer> {
  const { pieceLength, length } = download.metainfo
  const start = piece * pieceLength
  return download.read(start, Math.min(pieceLength, length - start))
}

const identities = new WeakMap<Wire, string>()

/**
 * Names the node behind a wire: the node address in its peer id, once it proved the cluster key
 * (or at once in an open swarm, where anyone may claim any id).
 */
export function acceptPeerIdentity(wire: Wire): string {
  const identity = decodePeerId(wire.peerId) ?? `${wire.remoteAddress}:${wire.remotePort}`
  identities.set(wire, identity)
  return identity
}

/** How stats and bans name a peer: its accepted identity, else the socket's remote end. */
export function peerLabel(wire: Wire): string {
  return identities.get(wire) ?? `${wire.remoteAddress}:${wire.remotePort}`
}


/** BEP 10 handshake key under which a shoal node tells the port of its registry API. */
const NODE_KEY = 'shoal_node'

/** Tells the peer which node this is: the port of its registry API, on the host of its peer id. */
export function announceNode(wire: Wire, registryPort: number): void {
  wire.extendedHandshake[NODE_KEY] = registryPort
}

/**
 * The node behind the wire, `host:registryPort`: the port it announced, on the host its label
 * names (so a peer can only name a node on the host it claims, and proves with a cluster key).
 */
export function announcedNode(wire: Wire): string | undefined {
  const port = handshakePort(wire, NODE_KEY)
  if (port === undefined) return undefined
  const label = peerLabel(wire)
  return `${label.slice(0, label.lastIndexOf(':'))}:${port}`
}
