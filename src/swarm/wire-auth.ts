import { randomBytes } from 'node:crypto'
import bencode from 'bencode'
import type { Wire } from 'webtorrent'
import type { ClusterKey } from '../net/cluster-key.js'
import type { IncomingMessage } from './bt-internals.js'

/** The BEP 10 extension that proves the cluster key on a BitTorrent connection. */
export const WIRE_AUTH_EXTENSION = 'shoal_auth'
/** A peer that has not proved the key this long after the connection opened is dropped. */
export const DEFAULT_WIRE_AUTH_TIMEOUT_MS = 5_000
const NONCE_BYTES = 16

export interface WireAuthInit {
  key: ClusterKey
  infoHash: string
  /** This node's peer id (hex), which its proof vouches for. */
  peerId: string
  timeoutMs?: number
  onProven: (wire: Wire) => void
  onRefused: (wire: Wire, why: string) => void
}

/** Until the peer proved the key, a request or piece from it closes the connection. */
export interface WireProof {
  /** Whether a message may be handled now; for use in `gateIncoming`. */
  admits(message: IncomingMessage): boolean
}

/**
 * Mutual proof of the cluster key, bound to the connection: each side puts a fresh nonce in its
 * extended handshake and answers the other's with HMAC(key, infohash, their nonce, own nonce,
 * own peer id). Until the peer's proof checks, the returned proof refuses (and closes the
 * connection on) a request or piece from it, so no piece flows either way; the peer id it
 * vouched for is then its identity.
 */
export function authenticateWire(wire: Wire, init: WireAuthInit): WireProof {
  const ownNonce = randomBytes(NONCE_BYTES)
  let proven = false
  let settled = false
  const refuse = (why: string): void => {
    if (settled) return
    settled = true
    clearTimeout(timer)
    init.onRefused(wire, why)
    wire.destroy()
  }
  const timer = setTimeout(() => refuse('no proof of the cluster key in time'), init.timeoutMs ?? DEFAULT_WIRE_AUTH_TIMEOUT_MS)
  timer.unref()
  wire.once('close', () => clearTimeout(timer))

  class ShoalAuth {
    get name(): string {
      return WIRE_AUTH_EXTENSION
    }

    onMessage(message: Uint8Array): void {
      if (settled) return
      const proof = decodeProof(message)
      const theirs = peerNonce
      if (!proof || !theirs || !init.key.verify('wire', [init.infoHash, ownNonce, theirs, wire.peerId], proof)) return refuse('its proof of the cluster key does not check')
      proven = settled = true
      clearTimeout(timer)
      init.onProven(wire)
    }
  }
  let peerNonce: Uint8Array | undefined
  wire.extendedHandshake['shoal_nonce'] = ownNonce
  wire.use(ShoalAuth)
  wire.on('extended', (name: string, handshake: Record<string, unknown>) => {
    if (name !== 'handshake' || settled || peerNonce) return
    const nonce = handshake['shoal_nonce']
    const mapping = handshake['m'] as Record<string, unknown> | undefined
    if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES || !mapping?.[WIRE_AUTH_EXTENSION]) return refuse('it does not speak shoal_auth (no cluster key)')
    peerNonce = nonce
    const tags = init.key.tags('wire', [init.infoHash, nonce, ownNonce, init.peerId])
    wire.extended(WIRE_AUTH_EXTENSION, bencode.encode({ t: tags }))
  })
  return {
    admits(message) {
      if (proven) return true
      refuse(`it sent a ${message} before proving the cluster key`)
      return false
    },
  }
}

function decodeProof(message: Uint8Array): Uint8Array[] | undefined {
  try {
    const decoded = bencode.decode(message) as { t?: unknown }
    return Array.isArray(decoded.t) && decoded.t.every((tag) => tag instanceof Uint8Array) ? decoded.t as Uint8Array[] : undefined
  } catch {
    return undefined
  }
}
