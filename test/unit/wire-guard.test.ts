import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { describe, it } from 'node:test'
import type { Wire } from 'webtorrent'
import { MAX_PEER_REQUESTS, MIN_SILENCE_MS, WireGuard } from '../../src/swarm/wire-guard.js'
import { ManualClock } from '../support/clock.js'

/** Just what the guard reads and calls on a bittorrent-protocol wire. */
class FakeWire extends EventEmitter {
  peerRequests: unknown[] = []
  requests: unknown[] = []
  amInterested = false
  peerInterested = false
  destroyed = false
  extendedHandshake: Record<string, unknown> = {}
  timeoutMs = 0
  served = 0
  _readableState = { buffered: 0 }
  _onRequest(): void {
    this.served++
    this.peerRequests.push({})
  }
  setTimeout(ms: number): void {
    this.timeoutMs = ms
  }
  destroy(): void {
    this.destroyed = true
  }
}

function guarded(clock = new ManualClock(), idleMs = 30_000) {
  const drops: string[] = []
  const guard = new WireGuard({ clock, onDrop: (_wire, kind) => drops.push(kind) }, { idleMs })
  const wire = new FakeWire()
  guard.attach(wire as unknown as Wire)
  return { guard, wire, drops, clock }
}

describe('wire guard', () => {
  it('advertises the request cap and drops a peer that asks past it before the request is served', () => {
    const { wire, drops } = guarded()
    assert.equal(wire.extendedHandshake['reqq'], MAX_PEER_REQUESTS)
    for (let i = 0; i < 1000; i++) (wire as unknown as { _onRequest(a: number, b: number, c: number): void })._onRequest(0, i * 16384, 16384)
    assert.ok(wire.destroyed)
    assert.deepEqual(drops, ['peer-overrun'])
    assert.ok(wire.served <= MAX_PEER_REQUESTS + 1, `served ${wire.served}`)
  })

  it('counts answered blocks the peer has not read against its cap', () => {
    const { wire, drops } = guarded()
    wire._readableState.buffered = (MAX_PEER_REQUESTS + 1) * 16384
    ;(wire as unknown as { _onRequest(a: number, b: number, c: number): void })._onRequest(0, 0, 16384)
    assert.deepEqual(drops, ['peer-overrun'])
    assert.equal(wire.served, 0)
  })

  it('times out silent peers after the minimum silence at first, and reports the drop', () => {
    const { wire, drops } = guarded()
    assert.equal(wire.timeoutMs, MIN_SILENCE_MS)
    wire.emit('timeout')
    assert.deepEqual(drops, ['peer-silent'])
  })

  it('closes a wire with no interest either way after the idle time, not one in use', () => {
    const clock = new ManualClock()
    const { guard, wire, drops } = guarded(clock, 2_000)
    const busy = new FakeWire()
    busy.amInterested = true
    const wires = [wire, busy] as unknown as Wire[]
    guard.sweep(wires)
    clock.advance(1_000)
    guard.sweep(wires)
    assert.equal(wire.destroyed, false)
    clock.advance(1_000)
    guard.sweep(wires)
    assert.ok(wire.destroyed)
    assert.equal(busy.destroyed, false)
    assert.deepEqual(drops, ['peer-idle'])
  })
})
