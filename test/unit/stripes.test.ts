import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { describe, it } from 'node:test'
import type { Torrent, Wire } from 'webtorrent'
import { Stripes } from '../../src/swarm/stripes.js'

const PIECES = 8

type TestWire = Wire & { label: string; peerPieces: { get(index: number): boolean; set(index: number): void } }

/** A wire as Stripes sees it: a label, the peer's pieces, choking, events. */
function wire(label: string, has: number[]): TestWire {
  const pieces = new Set(has)
  return Object.assign(new EventEmitter(), {
    label, peerChoking: false,
    peerPieces: { get: (index: number) => pieces.has(index), set: (index: number) => { pieces.add(index) }, buffer: new Uint8Array(1) },
  }) as unknown as TestWire
}

function torrent(wires: Wire[]) {
  let updates = 0
  const subject = { wires, length: PIECES * 16, pieceLength: 16 } as unknown as Torrent
  return { subject, wake: () => { updates++ }, updates: () => updates }
}

const all = Array.from({ length: PIECES }, (_, index) => index)
const asksHolderFor = (holder: TestWire): number[] => all.filter((index) => holder.peerPieces.get(index))

describe('stripes', () => {
  it('alone with a holder, takes every piece from it', () => {
    const holder = wire('h:1', all)
    const stripes = new Stripes(torrent([holder]).subject, 'me:1', (w) => (w as Wire & { label: string }).label)
    stripes.attach(holder)
    assert.deepEqual(asksHolderFor(holder), all)
  })

  it('with another downloader, asks the holder only for its own stripe and the pieces nobody else offers', () => {
    const holder = wire('h:1', all)
    const other = wire('z:2', [])
    const wires = [holder, other]
    const stripes = new Stripes(torrent(wires).subject, 'a:1', (w) => (w as Wire & { label: string }).label)
    for (const w of wires) stripes.attach(w)
    assert.deepEqual(asksHolderFor(holder), [0, 2, 4, 6], 'sorted labels a:1, z:2: stripe 0 of 2')
    other.peerPieces.set(1)
    assert.deepEqual(asksHolderFor(holder), [0, 2, 4, 6], 'the other downloader owns stripe 1')
  })

  it('lets an urgent piece come from the holder whatever its stripe, and wakes piece selection', () => {
    const holder = wire('h:1', all)
    const other = wire('z:2', [1])
    const wires = [holder, other]
    const t = torrent(wires)
    const stripes = new Stripes(t.subject, 'a:1', (w) => (w as Wire & { label: string }).label, t.wake)
    for (const w of wires) stripes.attach(w)
    assert.equal(holder.peerPieces.get(3), false)
    stripes.markUrgent(3)
    assert.equal(holder.peerPieces.get(3), true)
    assert.equal(t.updates(), 1)
    stripes.markUrgent(3)
    assert.equal(t.updates(), 1, 'once per piece')
  })
})
