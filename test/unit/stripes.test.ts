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

const label = (w: Wire): string => (w as Wire & { label: string }).label
const all = Array.from({ length: PIECES }, (_, index) => index)
const asksHolderFor = (holder: TestWire): number[] => all.filter((index) => holder.peerPieces.get(index))

describe('stripes', () => {
  it('alone with a holder, takes every piece from it', () => {
    const holder = wire('h:1', all)
    const stripes = new Stripes(torrent([holder]).subject, 'me:1', (w) => (w as Wire & { label: string }).label)
    stripes.attach(holder)
    assert.deepEqual(asksHolderFor(holder), all)
  })

  it('with another downloader, the two ask the holder for disjoint sets of pieces that together are all; never for a piece the other offers', () => {
    const views = ['a:1', 'z:2'].map((self) => {
      const holder = wire('h:1', all)
      const other = wire(self === 'a:1' ? 'z:2' : 'a:1', [])
      const stripes = new Stripes(torrent([holder, other]).subject, self, label)
      for (const w of [holder, other]) stripes.attach(w)
      return { holder, other, asked: asksHolderFor(holder) }
    })
    const [a, z] = views as [typeof views[0], typeof views[0]]
    assert.deepEqual([...a.asked, ...z.asked].sort(), all, 'every piece asked by exactly one')
    assert.ok(a.asked.length > 0 && z.asked.length > 0, 'one downloader took every piece')
    const ownedByA = a.asked[0]!
    a.other.peerPieces.set(ownedByA)
    assert.ok(!asksHolderFor(a.holder).includes(ownedByA), 'asked the holder for a piece another downloader offers')
  })

  it('downloaders that each see a different set of the others still leave no piece to nobody', () => {
    const many = Array.from({ length: 256 }, (_, index) => index)
    // a sees b and c; b sees only a; c sees only a (b and c are not connected to each other).
    const sees: Record<string, string[]> = { 'a:1': ['b:2', 'c:3'], 'b:2': ['a:1'], 'c:3': ['a:1'] }
    const asked = new Set<number>()
    for (const [self, others] of Object.entries(sees)) {
      const holder = wire('h:9', many)
      const wires = [holder, ...others.map((other) => wire(other, []))]
      const stripes = new Stripes({ wires, length: many.length * 16, pieceLength: 16 } as unknown as Torrent, self, label)
      for (const w of wires) stripes.attach(w)
      for (const index of many) if (holder.peerPieces.get(index)) asked.add(index)
    }
    assert.deepEqual(many.filter((index) => !asked.has(index)), [], 'pieces nobody asks the holder for')
  })

  it('lets an urgent piece come from the holder whoever owns it, and wakes piece selection', () => {
    const holder = wire('h:1', all)
    const other = wire('z:2', [])
    const wires = [holder, other]
    const t = torrent(wires)
    const stripes = new Stripes(t.subject, 'a:1', (w) => (w as Wire & { label: string }).label, t.wake)
    for (const w of wires) stripes.attach(w)
    const others = all.find((index) => !holder.peerPieces.get(index))
    assert.ok(others !== undefined, 'the other downloader owns no piece')
    stripes.markUrgent(others)
    assert.equal(holder.peerPieces.get(others), true)
    assert.equal(t.updates(), 1)
    stripes.markUrgent(others)
    assert.equal(t.updates(), 1, 'once per piece')
  })
})
