import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import Protocol from 'bittorrent-protocol'
import Piece from 'torrent-piece'
import type { Wire } from 'webtorrent'
import { DHT_PINS } from '../../src/routing/dht-internals.js'
import { BT_PINS, gateIncoming, installBtPatches, offerOnly, unreadBytes, type IncomingMessage } from '../../src/swarm/bt-internals.js'
import { assertPinned, PackageVersionError } from '../../src/util/packages.js'
import { eventually } from '../support/eventually.js'

const INFO_HASH = 'ab'.repeat(20)

/** Two real bittorrent-protocol wires piped to each other, handshaken, each unchoking the other. */
async function connectedPair() {
  const a = new Protocol()
  const b = new Protocol()
  a.pipe(b).pipe(a)
  a.handshake(INFO_HASH, '0a'.repeat(20))
  b.handshake(INFO_HASH, '0b'.repeat(20))
  a.unchoke()
  b.unchoke()
  await eventually('both unchoked', () => !a.peerChoking && !b.peerChoking, 3000, 5)
  return { a, b, close: () => { a.destroy(); b.destroy() } }
}

const asWire = (wire: Protocol): Wire => wire as unknown as Wire

describe('the BitTorrent engine\'s private members, on the real library objects', () => {
  it('gateIncoming: a refused request never reaches the wire\'s request listeners; an admitted one does', async () => {
    const { a, b, close } = await connectedPair()
    try {
      const asked: IncomingMessage[] = []
      let open = false
      gateIncoming(asWire(a), (message) => { asked.push(message); return open })
      const seen: number[] = []
      a.on('request', (index: number) => seen.push(index))
      b.request(1, 0, 16384, () => {})
      await eventually('the gate was asked', () => asked.length === 1, 3000, 5)
      assert.deepEqual(seen, [], 'refused')
      open = true
      b.request(2, 0, 16384, () => {})
      await eventually('the admitted request seen', () => seen.length === 1, 3000, 5)
      assert.deepEqual(seen, [2])
      assert.deepEqual(asked, ['request', 'request'])
    } finally {
      close()
    }
  })

  it('gateIncoming: a refused piece does not answer the request it was for', async () => {
    const { a, b, close } = await connectedPair()
    try {
      const asked: IncomingMessage[] = []
      gateIncoming(asWire(b), (message) => { asked.push(message); return false })
      const answers: string[] = []
      b.request(0, 0, 4, (err: Error | null) => answers.push(err ? err.message : 'data'))
      a.piece(0, 0, Buffer.alloc(4, 1))
      await eventually('the gate was asked', () => asked.includes('piece'), 3000, 5)
      assert.deepEqual(answers, [])
      assert.equal(b.requests.length, 1)
    } finally {
      close()
    }
  })

  it('unreadBytes: answers the peer has not taken pile up, and are counted', () => {
    const wire = new Protocol()
    try {
      wire.handshake(INFO_HASH, '0c'.repeat(20))
      const before = unreadBytes(asWire(wire))
      for (let offset = 0; offset < 4 * 16384; offset += 16384) wire.piece(0, offset, Buffer.alloc(16384))
      assert.ok(unreadBytes(asWire(wire)) >= before + 4 * 16384, `${unreadBytes(asWire(wire))} bytes unread`)
    } finally {
      wire.destroy()
    }
  })

  it('offerOnly: webtorrent sees only the pieces the filter allows, and later haves still count', () => {
    const wire = new Protocol()
    try {
      wire.peerPieces.set(1, true)
      wire.peerPieces.set(2, true)
      offerOnly(asWire(wire), (index) => index !== 1)
      assert.equal(wire.peerPieces.get(1), false)
      assert.equal(wire.peerPieces.get(2), true)
      wire.peerPieces.set(3, true)
      assert.equal(wire.peerPieces.get(3), true)
      assert.equal(wire.peerPieces.get(4), false)
    } finally {
      wire.destroy()
    }
  })
})

describe('torrent-piece flush', async () => {
  await installBtPatches()

  it('hands back a view of a whole piece that arrived in one buffer, without copying', () => {
    const whole = Buffer.alloc(3 * 16384 + 100, 5)
    const piece = new Piece(whole.length)
    assert.equal(piece.reserveRemaining(), 0)
    assert.ok(piece.set(0, whole, 'peer'))
    const flushed = piece.flush()!
    assert.equal(flushed.buffer, whole.buffer)
    assert.ok(Buffer.from(flushed).equals(whole))
  })

  it('copies blocks that came separately into one buffer, byte for byte', () => {
    const piece = new Piece(2 * 16384)
    const blocks = [Buffer.alloc(16384, 1), Buffer.alloc(16384, 2)]
    piece.set(1, blocks[1]!, 'b')
    assert.ok(piece.set(0, blocks[0]!, 'a'))
    const flushed = piece.flush()!
    assert.notEqual(flushed.buffer, blocks[0]!.buffer)
    assert.ok(Buffer.from(flushed).equals(Buffer.concat(blocks)))
  })
})

describe('pinned libraries', () => {
  it('pins every package whose internals are touched exactly, in package.json', () => {
    const dependencies = (JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> }).dependencies
    for (const pin of [...BT_PINS, ...DHT_PINS]) assert.equal(dependencies[pin.name], pin.version, pin.name)
  })

  it('accepts the loaded releases and refuses another one, naming the package and the copy', () => {
    assertPinned([...BT_PINS, ...DHT_PINS])
    assert.throws(() => assertPinned([{ name: 'streamx', version: '0.0.1', loadedBy: ['webtorrent', 'bittorrent-protocol'] }]),
      (err: Error) => err instanceof PackageVersionError && /^streamx 2\.\d+\.\d+ is installed \(the copy bittorrent-protocol loads, .*\), but .* written for 0\.0\.1/.test(err.message))
    assert.throws(() => assertPinned([{ name: 'no-such-package', version: '1.0.0', loadedBy: [] }]), /no-such-package is not installed/)
  })
})
