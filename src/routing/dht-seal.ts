import { randomBytes } from 'node:crypto'
import { MAX_KEYS, TAG_BYTES, type ClusterKey } from '../net/cluster-key.js'
import type { ReplayGuard } from '../net/replay-guard.js'

/**
 * A KRPC datagram sealed with the cluster key: the packet, then a trailer of its timestamp
 * (8 bytes, ms), a nonce (8), one tag per key (16 each), the tag count (1) and `SK` (2).
 */
const MAGIC = Buffer.from('SK')
const FIXED_TRAILER = 8 + 8 + 1 + MAGIC.length

export function sealDatagram(key: ClusterKey, packet: Uint8Array, nowMs = Date.now()): Buffer {
  const stamp = Buffer.alloc(8)
  stamp.writeBigUInt64BE(BigInt(nowMs))
  const nonce = randomBytes(8)
  const tags = key.tags('dht', [stamp, nonce, packet])
  return Buffer.concat([packet, stamp, nonce, ...tags, Buffer.from([tags.length]), MAGIC])
}

/** The packet inside a sealed datagram, or why it is refused. */
export function openDatagram(key: ClusterKey, replay: ReplayGuard, datagram: Buffer): { packet: Buffer } | { problem: string } {
  if (datagram.length < FIXED_TRAILER + TAG_BYTES || !datagram.subarray(datagram.length - MAGIC.length).equals(MAGIC)) return { problem: 'not sealed with a cluster key' }
  const count = datagram[datagram.length - MAGIC.length - 1]!
  const trailer = FIXED_TRAILER + count * TAG_BYTES
  if (count < 1 || count > MAX_KEYS || datagram.length <= trailer) return { problem: 'malformed seal' }
  const packet = datagram.subarray(0, datagram.length - trailer)
  const stamp = datagram.subarray(packet.length, packet.length + 8)
  const nonce = datagram.subarray(packet.length + 8, packet.length + 16)
  const tags: Buffer[] = []
  for (let index = 0; index < count; index++) tags.push(datagram.subarray(packet.length + 16 + index * TAG_BYTES, packet.length + 16 + (index + 1) * TAG_BYTES))
  if (!key.verify('dht', [stamp, nonce, packet], tags)) return { problem: 'not sealed with a key of this cluster' }
  const stale = replay.check(Number(stamp.readBigUInt64BE()), nonce.toString('hex'))
  return stale ? { problem: stale } : { packet }
}
