import type { Wire } from 'webtorrent'
import type { FaultKind } from '../observe/ledger.js'
import { systemClock, type Clock } from '../util/clock.js'

/** The most block requests a peer may have outstanding with us (advertised as BEP 10 `reqq`). */
export const MAX_PEER_REQUESTS = 64
/** Bytes of answered blocks a peer may leave unread before it counts as over its cap. */
const BLOCK_BYTES = 16 * 1024
export const DEFAULT_PEER_IDLE_MS = 30_000
/** A wire that sent none of the blocks we asked for this long is dropped; measured per wire within these bounds. */
export const MIN_SILENCE_MS = 1_500
export const MAX_SILENCE_MS = 5_000
const SILENCE_FACTOR = 20
const SMOOTHING = 0.1
const RETUNE_EVERY_BLOCKS = 32

/** What webtorrent and bittorrent-protocol keep on a wire that the guard reads. */
type GuardedWire = Wire & {
  peerRequests: unknown[]
  requests: unknown[]
  amInterested: boolean
  peerInterested: boolean
  destroyed?: boolean
  extendedHandshake: Record<string, unknown>
  setTimeout(ms: number, unref?: boolean): void
  /** bittorrent-protocol's handler of a parsed request message. */
  _onRequest(index: number, offset: number, length: number): void
  /** streamx: bytes pushed to the socket but not yet taken by it. */
  _readableState?: { buffered?: number }
}

export interface WireGuardComponents {
  clock?: Clock
  /** A wire was dropped for a reason other than a normal close. */
  onDrop(wire: Wire, kind: FaultKind, detail: string): void
}

export interface WireGuardInit {
  idleMs?: number
}

/**
 * Keeps every wire within bounds whatever the peer does: a peer that asks for more blocks than
 * its cap, or stops reading what it asked for, is dropped before its answers pile up in
 * memory; a peer that goes silent on our requests is dropped after a short time measured from
 * its own pace (its blocks are then asked of others); a wire with no interest either way is
 * closed after `idleMs`.
 */
export class WireGuard {
  private readonly clock: Clock
  private readonly idleSince = new WeakMap<Wire, number>()
  /** Each wire's current request timeout, for the drop's log line. */
  private readonly silences = new WeakMap<Wire, number>()

  constructor(private readonly components: WireGuardComponents, private readonly init: WireGuardInit = {}) {
    this.clock = components.clock ?? systemClock
  }

  attach(wire: Wire): void {
    const guarded = wire as GuardedWire
    guarded.extendedHandshake['reqq'] = MAX_PEER_REQUESTS
    // Checked before the request is queued or read from disk: every 'request' listener
    // (webtorrent's reads the piece) would run even for a wire dropped by an earlier one.
    const onRequest = guarded._onRequest.bind(guarded)
    guarded._onRequest = (index, offset, length) => {
      if (!guarded.destroyed && this.withinCap(guarded)) onRequest(index, offset, length)
    }
    this.pace(guarded)
    guarded.once('timeout', () => this.components.onDrop(wire, 'peer-silent', `no requested block for ${this.silenceOf(guarded)} ms`))
  }

  /** Closes wires that have had no interest either way for `idleMs`; call every few seconds. */
  sweep(wires: readonly Wire[]): void {
    const now = this.clock.now()
    const idleMs = this.init.idleMs ?? DEFAULT_PEER_IDLE_MS
    for (const wire of wires as GuardedWire[]) {
      if (wire.amInterested || wire.peerInterested || wire.requests.length > 0 || wire.peerRequests.length > 0) {
        this.idleSince.delete(wire)
        continue
      }
      const since = this.idleSince.get(wire)
      if (since === undefined) this.idleSince.set(wire, now)
      else if (now - since >= idleMs && !wire.destroyed) this.drop(wire, 'peer-idle', `no interest either way for ${Math.round((now - since) / 1000)} s`)
    }
  }

  /** False (and the wire dropped) when one more request would put the peer past its cap. */
  private withinCap(wire: GuardedWire): boolean {
    const unread = wire._readableState?.buffered ?? 0
    const outstanding = wire.peerRequests.length + Math.floor(unread / BLOCK_BYTES)
    // One message of slack: a request may arrive while the answer to an earlier one is still queued.
    if (outstanding < MAX_PEER_REQUESTS + 1) return true
    this.drop(wire, 'peer-overrun', `${wire.peerRequests.length} requests waiting and ${unread} bytes unread, over the cap of ${MAX_PEER_REQUESTS} blocks`)
    return false
  }

  /** Tunes the wire's request timeout to a multiple of the gap between its blocks. */
  private pace(wire: GuardedWire): void {
    let smoothedGap = MIN_SILENCE_MS / SILENCE_FACTOR
    let last = this.clock.now()
    let blocks = 0
    this.silences.set(wire, MIN_SILENCE_MS)
    wire.setTimeout(MIN_SILENCE_MS, true)
    wire.on('piece', () => {
      const now = this.clock.now()
      smoothedGap += SMOOTHING * (Math.min(now - last, MAX_SILENCE_MS) - smoothedGap)
      last = now
      if (++blocks % RETUNE_EVERY_BLOCKS !== 0) return
      const silence = Math.round(Math.min(MAX_SILENCE_MS, Math.max(MIN_SILENCE_MS, SILENCE_FACTOR * smoothedGap)))
      this.silences.set(wire, silence)
      wire.setTimeout(silence, true)
    })
  }

  private silenceOf(wire: Wire): number {
    return this.silences.get(wire) ?? MIN_SILENCE_MS
  }

  private drop(wire: GuardedWire, kind: FaultKind, detail: string): void {
    this.components.onDrop(wire, kind, detail)
    wire.destroy()
  }
}
