import { randomBytes } from 'node:crypto'
import bencode from 'bencode'
import type { Wire } from 'webtorrent'
import type { ClusterKey } from '../net/cluster-key.js'

/** The BEP 10 extension that proves the cluster key on a BitTorrent connection. */
export const WIRE_AUTH_EXTENSION = 'shoal_auth'
/** A peer that has not proved the key this long after the connection opened is dropped. */
export const DEFAULT_WIRE_AUTH_TIMEOUT_MS = 5_000
const NONCE_BYTES = 16

/** The parts of bittorrent-protocol's Wire (not its public API) the gate wraps. */
interface WireInternals {
  peerId: string
  extendedHandshake: Record<string, unknown>
  use(extension: unknown): void
  extended(name: string, message: Uint8Array): void
  destroyed?: boolean
  _onRequest(...args: unknown[]): void
  _onPiece(...args: unknown[]): void
}

export interface WireAuthInit {
  key: ClusterKey
  infoHash: string
  /** This node's peer id (hex), which its proof vouches for. */
  peerId: string
  timeoutMs?: number
  onProven: (wire: Wire) => void
  onRefused: (wire: Wire, why: string) => void
}

/**
 * Mutual proof of the cluster key, bound to the connection: each side puts a fresh nonce in its
 * extended handshake and answers the other's with HMAC(key, infohash, their nonce, own nonce,
 * own peer id). Until the peer's proof checks, a request or piece from it closes the
 * connection, so no piece flows either way; the peer id it vouched for is then its identity.
 */
export function authenticateWire(wire: Wire, init: WireAuthInit): void {
  const internals = wire as unknown as WireInternals
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
  gateUntilProven(internals, () => proven, refuse)

  class ShoalAuth {
    onMessage(message: Uint8Array): void {
      if (settled) return
      const proof = decodeProof(message)
      const theirs = peerNonce
      if (!proof || !theirs || !init.key.verify('wire', [init.infoHash, ownNonce, theirs, internals.peerId], proof)) return refuse('its proof of the cluster key does not check')
      proven = settled = true
      clearTimeout(timer)
      init.onProven(wire)
    }
  }
  ;(ShoalAuth.prototype as unknown as { name: string }).name = WIRE_AUTH_EXTENSION
  let peerNonce: Uint8Array | undefined
  internals.extendedHandshake['shoal_nonce'] = ownNonce
  internals.use(ShoalAuth)
  wire.on('extended', (name: string, handshake: Record<string, unknown>) => {
    if (name !== 'handshake' || settled || peerNonce) return
    const nonce = handshake['shoal_nonce']
    const mapping = handshake['m'] as Record<string, unknown> | undefined
    if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES || !mapping?.[WIRE_AUTH_EXTENSION]) return refuse('it does not speak shoal_auth (no cluster key)')
    peerNonce = nonce
    const tags = init.key.tags('wire', [init.infoHash, nonce, ownNonce, init.peerId])
    internals.extended(WIRE_AUTH_EXTENSION, bencode.encode({ t: tags }))
  })
}

function gateUntilProven(wire: WireInternals, proven: () => boolean, refuse: (why: string) => void): void {
  for (const method of ['_onRequest', '_onPiece'] as const) {
    const original = wire[method].bind(wire)
    wire[method] = (...args: unknown[]) => {
      if (proven()) return original(...args)
      refuse(`it sent a ${method === '_onRequest' ? 'request' : 'piece'} before proving the cluster key`)
    }
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
