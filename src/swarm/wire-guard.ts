import type { Wire } from 'webtorrent'
import type { FaultKind } from '../observe/ledger.js'
import { systemClock, type Clock } from '../util/clock.js'
import { unreadBytes } from './bt-internals.js'

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
 * its own pace (its blocks are then asked of others); a wire of no use is closed after `idleMs`.
 */
export class WireGuard {
  private readonly clock: Clock
  private readonly idleSince = new WeakMap<Wire, number>()
  /** Each wire's current request timeout, for the drop's log line. */
  private readonly silences = new WeakMap<Wire, number>()
  private readonly dropped = new WeakSet<Wire>()
  /** When the peer last asked for or sent a block. */
  private readonly lastHeard = new WeakMap<Wire, number>()

  constructor(private readonly components: WireGuardComponents, private readonly init: WireGuardInit = {}) {
    this.clock = components.clock ?? systemClock
  }

  /** Advertises the request cap and paces the wire's request timeout; the cap itself is `admitsRequest`. */
  attach(wire: Wire): void {
    wire.extendedHandshake['reqq'] = MAX_PEER_REQUESTS
    this.lastHeard.set(wire, this.clock.now())
    this.pace(wire)
    wire.once('timeout', () => this.components.onDrop(wire, 'peer-silent', `no requested block for ${this.silenceOf(wire)} ms`))
  }

  /**
   * Closes wires that have been of no use for `idleMs`: no interest either way, or a peer that
   * says it is interested and, unchoked, asks for nothing, or one that keeps us choked while we
   * are interested. A peer this node chooses to choke is waiting on us, not idle. Call every few
   * seconds.
   */
  sweep(wires: readonly Wire[]): void {
    const now = this.clock.now()
    const idleMs = this.init.idleMs ?? DEFAULT_PEER_IDLE_MS
    for (const wire of wires) {
      if (wire.destroyed) continue
      const idle = idleness(wire)
      if (!idle) {
        this.idleSince.delete(wire)
        continue
      }
      if (!this.idleSince.has(wire)) this.idleSince.set(wire, now)
      const since = Math.max(this.idleSince.get(wire)!, this.lastHeard.get(wire) ?? 0)
      if (now - since >= idleMs) this.drop(wire, 'peer-idle', `${idle} for ${Math.round((now - since) / 1000)} s`)
    }
  }

  /**
   * False (and the wire dropped) when one more request would put the peer past its cap. Asked
   * before the request is queued or read from disk (see `gateIncoming`).
   */
  admitsRequest(wire: Wire): boolean {
    // Messages already parsed from the same chunk still arrive while the wire is being destroyed.
    if (this.dropped.has(wire)) return false
    this.lastHeard.set(wire, this.clock.now())
    const unread = unreadBytes(wire)
    const outstanding = wire.peerRequests.length + Math.floor(unread / BLOCK_BYTES)
    // One message of slack: a request may arrive while the answer to an earlier one is still queued.
    if (outstanding < MAX_PEER_REQUESTS + 1) return true
    this.drop(wire, 'peer-overrun', `${wire.peerRequests.length} requests waiting and ${unread} bytes unread, over the cap of ${MAX_PEER_REQUESTS} blocks`)
    return false
  }

  /** Tunes the wire's request timeout to a multiple of the gap between its blocks. */
  private pace(wire: Wire): void {
    let smoothedGap = MIN_SILENCE_MS / SILENCE_FACTOR
    let last = this.clock.now()
    let blocks = 0
    this.silences.set(wire, MIN_SILENCE_MS)
    wire.setTimeout(MIN_SILENCE_MS, true)
    wire.on('piece', () => {
      const now = this.clock.now()
      this.lastHeard.set(wire, now)
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

  private drop(wire: Wire, kind: FaultKind, detail: string): void {
    this.dropped.add(wire)
    this.components.onDrop(wire, kind, detail)
    wire.destroy()
  }
}

/** How a wire is of no use now, or undefined if it is in use (or the peer waits on this node's choke). */
function idleness(wire: Wire): string | undefined {
  if (wire.requests.length > 0 || wire.peerRequests.length > 0) return undefined
  if (!wire.amInterested && !wire.peerInterested) return 'no interest either way'
  if (wire.peerInterested && !wire.amChoking) return 'interested and unchoked, but asked for nothing'
  if (wire.amInterested && wire.peerChoking) return 'kept us choked while we were interested'
  return undefined
}
