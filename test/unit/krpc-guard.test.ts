import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import bencode from 'bencode'
import { guardedKrpcSocket, krpcProblem } from '../../src/routing/krpc-guard.js'
import { SourceLimits } from '../../src/routing/source-limits.js'
import { eventually } from '../support/eventually.js'

const id = Buffer.alloc(20, 1)
const encode = (message: unknown): Buffer => Buffer.from(bencode.encode(message))

describe('KRPC guard', () => {
  it('accepts the BEP 5 messages bittorrent-dht exchanges', () => {
    assert.equal(krpcProblem(encode({ t: 'aa', y: 'q', q: 'ping', a: { id } })), undefined)
    assert.equal(krpcProblem(encode({ t: 'aa', y: 'q', q: 'find_node', a: { id, target: id } })), undefined)
    assert.equal(krpcProblem(encode({ t: 'aa', y: 'q', q: 'get_peers', a: { id, info_hash: id } })), undefined)
    assert.equal(krpcProblem(encode({ t: 'aa', y: 'r', r: { id } })), undefined)
    assert.equal(krpcProblem(encode({ t: 'aa', y: 'e', e: [201, 'error'] })), undefined)
  })

  it('names what is wrong with malformed packets', () => {
    assert.equal(krpcProblem(Buffer.alloc(0)), 'bad size')
    assert.equal(krpcProblem(Buffer.alloc(9000, 0x64)), 'bad size')
    assert.equal(krpcProblem(Buffer.from('not bencode')), 'not bencode')
    assert.equal(krpcProblem(encode({ y: 'q' })), 'no transaction id')
    assert.equal(krpcProblem(encode({ t: 'aa', y: 'q', q: 'put', a: { id } })), 'unsupported query')
    assert.equal(krpcProblem(encode({ t: 'aa', y: 'q', q: 'ping', a: { id: 7 } })), 'query without a node id')
    assert.equal(krpcProblem(encode({ t: 'aa', y: 'q', q: 'find_node', a: { id, target: 'short' } })), 'find_node without a target')
    assert.equal(krpcProblem(encode({ t: 'aa', y: 'x' })), 'unknown message type')
  })

  it('drops malformed datagrams before listeners see them and passes good ones on', async () => {
    const guarded = guardedKrpcSocket({ limits: new SourceLimits({}), onDrop: (reason, from) => dropped.push(`${reason} from ${from.split(':')[0]}`) })
    const dropped: string[] = []
    const received: Buffer[] = []
    guarded.on('message', (message: Buffer) => received.push(message))
    guarded.bind(0, '127.0.0.1')
    await once(guarded, 'listening')
    const sender = createSocket('udp4')
    try {
      const port = guarded.address().port
      const good = encode({ t: 'aa', y: 'q', q: 'ping', a: { id } })
      for (const packet of [Buffer.from('garbage'), good]) sender.send(packet, port, '127.0.0.1')
      await eventually('both datagrams handled', () => dropped.length + received.length === 2, 5000, 10)
      assert.deepEqual(dropped, ['not bencode from 127.0.0.1'])
      assert.ok(received[0]?.equals(good))
    } finally {
      sender.close()
      guarded.close()
    }
  })
})
