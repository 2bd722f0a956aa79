import { crc32 } from 'node:zlib'
import type { Wire } from 'webtorrent'
import type { Download } from './download.js'
import { decodePeerId } from './peer-id.js'

/** The BitTorrent request size webtorrent uses. */
const BLOCK_LENGTH = 16 * 1024

/** CRC32 of every 16 KiB block of a verified piece, to compare with what suspects sent. */
export async function goodBlockCrcs(download: Download, piece: number): Promise<Map<number, number>> {
  const { pieceLength, length } = download.metainfo
  const start = piece * pieceLength
  const data = await download.read(start, Math.min(pieceLength, length - start))
  const blocks = new Map<number, number>()
  for (let offset = 0; offset < data.length; offset += BLOCK_LENGTH) blocks.set(offset, crc32(data.subarray(offset, offset + BLOCK_LENGTH)))
  return blocks
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

