import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { describe, it } from 'node:test'
import Protocol from 'bittorrent-protocol'
import type { Wire } from 'webtorrent'
import { gateIncoming } from '../../src/swarm/bt-internals.js'
import { MAX_PEER_REQUESTS, MIN_SILENCE_MS, WireGuard } from '../../src/swarm/wire-guard.js'
import { ManualClock } from '../support/clock.js'
import { eventually } from '../support/eventually.js'

/** The public members the guard's timers and sweep read on a bittorrent-protocol wire. */
class FakeWire extends EventEmitter {
  peerRequests: unknown[] = []
  requests: unknown[] = []
  amInterested = false
  peerInterested = false
  amChoking = true
  peerChoking = true
  destroyed = false
  extendedHandshake: Record<string, unknown> = {}
  timeoutMs = 0
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

const INFO_HASH = Buffer.alloc(20, 0xab)

/** A BitTorrent request message: length 13, id 6, piece, offset, length. */
function requestMessage(piece: number, offset: number, length: number): Buffer {
  const message = Buffer.alloc(17)
  message.writeUInt32BE(13, 0)
  message.writeUInt8(6, 4)
  message.writeUInt32BE(piece, 5)
  message.writeUInt32BE(offset, 9)
  message.writeUInt32BE(length, 13)
  return message
}

/**
 * A real bittorrent-protocol wire, guarded as PeerWires guards it, that has unchoked a peer
 * whose bytes the test writes into it; nothing reads what it sends, so its answers stay unread.
 */
function realWire() {
  const drops: string[] = []
  const guard = new WireGuard({ clock: new ManualClock(), onDrop: (_wire, kind) => drops.push(kind) })
  const wire = new Protocol()
  const asWire = wire as unknown as Wire
  guard.attach(asWire)
  gateIncoming(asWire, (message) => message !== 'request' || guard.admitsRequest(asWire))
  let served = 0
  wire.on('request', () => served++)
  wire.handshake(INFO_HASH.toString('hex'), '0a'.repeat(20))
  wire.write(Buffer.concat([Buffer.from([19]), Buffer.from('BitTorrent protocol'), Buffer.alloc(8), INFO_HASH, Buffer.alloc(20, 0x0b)]))
  wire.unchoke()
  return { wire, drops, served: () => served }
}

describe('wire guard', () => {
  it('advertises the request cap and drops a peer that asks past it before the request is served', async () => {
    const { wire, drops, served } = realWire()
    assert.equal(wire.extendedHandshake['reqq'], MAX_PEER_REQUESTS)
    wire.write(Buffer.concat(Array.from({ length: 1000 }, (_, i) => requestMessage(0, i * 16384, 16384))))
    await eventually('the wire dropped', () => wire.destroyed, 3000, 5)
    assert.deepEqual(drops, ['peer-overrun'])
    assert.ok(served() <= MAX_PEER_REQUESTS + 1, `served ${served()}`)
  })

  it('counts answered blocks the peer has not read against its cap', async () => {
    const { wire, drops, served } = realWire()
    for (let i = 0; i <= MAX_PEER_REQUESTS; i++) wire.piece(0, i * 16384, Buffer.alloc(16384))
    wire.write(requestMessage(0, 0, 16384))
    await eventually('the wire dropped', () => wire.destroyed, 3000, 5)
    assert.deepEqual(drops, ['peer-overrun'])
    assert.equal(served(), 0)
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
    busy.requests.push({})
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

  it('closes a peer that says it is interested and, unchoked, never asks; keeps one this node chokes', () => {
    const clock = new ManualClock()
    const { guard, wire, drops } = guarded(clock, 2_000)
    Object.assign(wire, { peerInterested: true, amChoking: false })
    const choked = new FakeWire()
    choked.peerInterested = true
    guard.attach(choked as unknown as Wire)
    const wires = [wire, choked] as unknown as Wire[]
    guard.sweep(wires)
    clock.advance(1_999)
    guard.sweep(wires)
    assert.equal(wire.destroyed, false)
    clock.advance(1)
    guard.sweep(wires)
    assert.ok(wire.destroyed)
    assert.equal(choked.destroyed, false)
    assert.deepEqual(drops, ['peer-idle'])
  })

  it('closes a peer that keeps this node choked while it is interested; a block from it restarts the count', () => {
    const clock = new ManualClock()
    const { guard, wire, drops } = guarded(clock, 2_000)
    Object.assign(wire, { amInterested: true, peerChoking: true })
    guard.sweep([wire as unknown as Wire])
    clock.advance(1_500)
    wire.emit('piece', 0, 0, Buffer.alloc(1))
    clock.advance(1_500)
    guard.sweep([wire as unknown as Wire])
    assert.equal(wire.destroyed, false, 'heard from 1.5 s ago')
    clock.advance(500)
    guard.sweep([wire as unknown as Wire])
    assert.ok(wire.destroyed)
    assert.deepEqual(drops, ['peer-idle'])
  })
})
