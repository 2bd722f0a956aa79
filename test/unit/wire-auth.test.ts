import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import Protocol from 'bittorrent-protocol'
import type { Wire } from 'webtorrent'
import { ClusterKey } from '../../src/net/cluster-key.js'
import { authenticateWire } from '../../src/swarm/wire-auth.js'
import { eventually } from '../support/eventually.js'

const INFO_HASH = 'ab'.repeat(20)
const ID_A = '2d5348303030312d7f000001138800000000000a'
const ID_B = '2d5348303030312d7f000002138800000000000b'
const keyOf = (line: string): ClusterKey => ClusterKey.parse(line, 'k')
const SHARED = 'wire-test-key-0123456789abcdef0123456789'

/** Two wires piped to each other; each side authenticates with its key (none: a plain BitTorrent client). */
function pair(keyA: ClusterKey, keyB: ClusterKey | undefined) {
  const a = new Protocol()
  const b = new Protocol()
  a.pipe(b).pipe(a)
  const outcome = { a: '', b: '' }
  const attach = (wire: Protocol, key: ClusterKey, side: 'a' | 'b', peerId: string): void => void authenticateWire(wire as unknown as Wire, {
    key, infoHash: INFO_HASH, peerId, timeoutMs: 2_000,
    onProven: () => { outcome[side] = 'proven' },
    onRefused: (_, why) => { outcome[side] = why },
  })
  // As webtorrent does: the extension is attached when the peer's handshake arrives, before ours goes out.
  a.once('handshake', () => attach(a, keyA, 'a', ID_A))
  if (keyB) b.once('handshake', () => attach(b, keyB, 'b', ID_B))
  a.handshake(INFO_HASH, ID_A)
  b.once('handshake', () => queueMicrotask(() => b.handshake(INFO_HASH, ID_B)))
  return { a, b, outcome, close: () => { a.destroy(); b.destroy() } }
}

describe('wire authentication', () => {
  it('proves the key both ways when both sides share it', async () => {
    const subject = pair(keyOf(SHARED), keyOf(`other-key-0123456789abcdef0123456789\n${SHARED}`))
    try {
      await eventually('both proven', () => subject.outcome.a === 'proven' && subject.outcome.b === 'proven', 3000, 10)
    } finally {
      subject.close()
    }
  })

  it('refuses a peer with another key, on both sides', async () => {
    const subject = pair(keyOf(SHARED), keyOf('other-key-0123456789abcdef0123456789'))
    try {
      await eventually('both refused', () => /does not check/.test(subject.outcome.a) && /does not check/.test(subject.outcome.b), 3000, 10)
    } finally {
      subject.close()
    }
  })

  it('refuses a plain BitTorrent peer: no shoal_auth in its extended handshake', async () => {
    const subject = pair(keyOf(SHARED), undefined)
    try {
      await eventually('a refused the peer', () => subject.outcome.a !== '', 3000, 10)
      assert.match(subject.outcome.a, /does not speak shoal_auth/)
    } finally {
      subject.close()
    }
  })
})
