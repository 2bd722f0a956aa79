import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import bencode from 'bencode'
import { ClusterKey } from '../../src/net/cluster-key.js'
import { ReplayGuard } from '../../src/net/replay-guard.js'
import { sealDatagram } from '../../src/routing/dht-seal.js'
import { guardedKrpcSocket } from '../../src/routing/krpc-guard.js'
import { RecordStore } from '../../src/routing/record-store.js'
import { SourceLimits } from '../../src/routing/source-limits.js'
import { ManualClock } from '../support/clock.js'
import { eventually } from '../support/eventually.js'

const record = (a: number, b: number, port: number): Buffer => Buffer.from([10, 0, a, b, port >> 8, port & 255])

describe('DHT record store', () => {
  it('evicts the flooding source\'s own oldest records, never the others\'', () => {
    const store = new RecordStore({ maxAgeMs: 60_000, maxRecords: 1_000, maxPerSource: 600 }, new ManualClock())
    for (let index = 0; index < 50; index++) store.add(`honest-${index}`, record(0, 1, 5000))
    for (let index = 0; index < 50; index++) store.add(`other-${index}`, record(0, 2, 5000))
    for (let index = 0; index < 100_000; index++) store.add(`flood-${index}`, record(9, 9, index % 60_000 + 1))
    assert.ok(store.size <= 1_000)
    for (let index = 0; index < 50; index++) {
      assert.equal(store.get(`honest-${index}`).length, 1)
      assert.equal(store.get(`other-${index}`).length, 1)
    }
    assert.equal(store.get('flood-0').length, 0)
    assert.equal(store.get('flood-99999').length, 1)
    assert.deepEqual(store.sources(1), [{ source: '10.0.9.9', records: 600 }])
  })

  it('when full, takes from the source holding the most; records expire after their age; a re-announce refreshes', () => {
    const clock = new ManualClock()
    const store = new RecordStore({ maxAgeMs: 1_000, maxRecords: 10, maxPerSource: 10 }, clock)
    for (let index = 0; index < 4; index++) store.add(`a-${index}`, record(0, 1, 1))
    for (let index = 0; index < 8; index++) store.add(`b-${index}`, record(0, 2, 1))
    assert.equal(store.size, 10)
    assert.equal(store.get('a-0').length, 1)
    assert.equal(store.get('b-0').length, 0)
    clock.advance(600)
    store.add('a-1', record(0, 1, 1))
    clock.advance(600)
    assert.equal(store.get('a-0').length, 0)
    assert.equal(store.get('a-1').length, 1)
    assert.ok(store.remove('a-1', record(0, 1, 1)))
    assert.equal(store.get('a-1').length, 0)
  })
})

describe('per-source rate limits', () => {
  it('allow a burst, then the refill rate, per source and kind', () => {
    const clock = new ManualClock()
    const limits = new SourceLimits({ query: { perSecond: 10, burst: 20 } }, clock)
    let allowed = 0
    for (let index = 0; index < 100; index++) if (limits.allow('1.1.1.1', 'query')) allowed++
    assert.equal(allowed, 20)
    assert.ok(limits.allow('2.2.2.2', 'query'))
    assert.ok(limits.allow('1.1.1.1', 'response'))
    clock.advance(500)
    allowed = 0
    for (let index = 0; index < 100; index++) if (limits.allow('1.1.1.1', 'query')) allowed++
    assert.equal(allowed, 5)
  })
})

describe('guarded KRPC socket with a cluster key', () => {
  it('seals what it sends, and passes on only sealed datagrams within the rate limit', async () => {
    const key = ClusterKey.parse('dht-test-key-0123456789abcdef0123456789', 'k')
    const dropped: string[] = []
    const received: Buffer[] = []
    const guarded = guardedKrpcSocket({ key, replay: new ReplayGuard(), limits: new SourceLimits({ query: { perSecond: 1, burst: 2 } }), onDrop: (reason) => dropped.push(reason) })
    guarded.on('message', (message: Buffer) => received.push(message))
    guarded.bind(0, '127.0.0.1')
    await once(guarded, 'listening')
    const other = createSocket('udp4')
    other.bind(0, '127.0.0.1')
    await once(other, 'listening')
    const echoed: Buffer[] = []
    other.on('message', (message: Buffer) => echoed.push(message))
    try {
      const ping = Buffer.from(bencode.encode({ t: 'aa', y: 'q', q: 'ping', a: { id: Buffer.alloc(20, 1) } }))
      const port = guarded.address().port
      other.send(ping, port, '127.0.0.1')
      for (let index = 0; index < 3; index++) other.send(sealDatagram(key, ping), port, '127.0.0.1')
      await eventually('all four handled', () => dropped.length + received.length === 4, 5000, 10)
      assert.deepEqual(dropped.sort(), ['not sealed with a cluster key', 'query rate limit'])
      assert.ok(received.every((message) => message.equals(ping)))
      guarded.send(ping, 0, ping.length, other.address().port, '127.0.0.1')
      await eventually('the sealed datagram', () => echoed.length === 1, 5000, 10)
      assert.ok(echoed[0]!.length > ping.length && echoed[0]!.subarray(0, ping.length).equals(ping))
    } finally {
      other.close()
      guarded.close()
    }
  })
})
