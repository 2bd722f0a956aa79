import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ClusterKey, ClusterKeyError } from '../../src/net/cluster-key.js'
import { ReplayGuard } from '../../src/net/replay-guard.js'
import { signAnswer, signRequest, verifyAnswer, verifyRequest, AUTH_HEADER } from '../../src/protocol/peer-auth.js'
import { openDatagram, sealDatagram } from '../../src/routing/dht-seal.js'
import { ManualClock } from '../support/clock.js'

const OLD = 'old-key-0123456789abcdef0123456789abcdef'
const NEW = 'new-key-0123456789abcdef0123456789abcdef'
const keyOf = (...lines: string[]): ClusterKey => ClusterKey.parse(lines.join('\n'), 'test.key')

describe('cluster key', () => {
  it('reads one key a line, skipping blanks and comments, and refuses files that hold no usable key', () => {
    assert.equal(ClusterKey.parse(`# rotated 2026-11\n\n${NEW}\n${OLD}\n`, 'k').fingerprints.length, 2)
    assert.throws(() => ClusterKey.parse('# nothing\n', 'k'), ClusterKeyError)
    assert.throws(() => ClusterKey.parse('short\n', 'k'), /shorter than 32/)
    assert.throws(() => ClusterKey.parse([OLD, NEW, `${OLD}1`, `${OLD}2`, `${OLD}3`].join('\n'), 'k'), /at most 4/)
  })

  it('lets nodes talk when their key files share a key: [old] ↔ [new, old] ↔ [new], not [old] ↔ [new]', () => {
    const parts = ['GET', '/v2/x']
    const verifies = (sender: ClusterKey, receiver: ClusterKey): boolean => receiver.verify('http-request', parts, sender.tags('http-request', parts))
    assert.ok(verifies(keyOf(OLD), keyOf(NEW, OLD)) && verifies(keyOf(NEW, OLD), keyOf(OLD)))
    assert.ok(verifies(keyOf(NEW), keyOf(NEW, OLD)) && verifies(keyOf(NEW, OLD), keyOf(NEW)))
    assert.ok(!verifies(keyOf(OLD), keyOf(NEW)) && !verifies(keyOf(NEW), keyOf(OLD)))
  })

  it('never accepts a tag made for another kind of message or other content', () => {
    const key = keyOf(OLD)
    assert.ok(!key.verify('wire', ['a'], key.tags('dht', ['a'])))
    assert.ok(!key.verify('dht', ['a', 'b'], key.tags('dht', ['ab'])))
    assert.ok(!key.verify('dht', ['a'], [Buffer.alloc(16)]))
  })
})

describe('replay guard', () => {
  it('refuses a nonce seen before and a timestamp outside the window', () => {
    const clock = new ManualClock(1_000_000)
    const guard = new ReplayGuard(clock, { windowMs: 60_000 })
    assert.equal(guard.check(clock.now(), 'a'), undefined)
    assert.equal(guard.check(clock.now(), 'a'), 'replayed nonce')
    assert.match(guard.check(clock.now() - 61_000, 'b') ?? '', /window/)
    assert.match(guard.check(clock.now() + 61_000, 'c') ?? '', /window/)
  })
})

describe('sealed DHT datagrams', () => {
  const packet = Buffer.from('d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe')

  it('open only with a shared key, once, and untampered', () => {
    const key = keyOf(NEW, OLD)
    const sealed = sealDatagram(keyOf(OLD), packet)
    const opened = openDatagram(key, new ReplayGuard(), sealed)
    assert.ok('packet' in opened && opened.packet.equals(packet))
    const replay = new ReplayGuard()
    assert.ok('packet' in openDatagram(key, replay, sealed))
    assert.deepEqual(openDatagram(key, replay, sealed), { problem: 'replayed nonce' })
    const tampered = Buffer.from(sealed)
    tampered[3] ^= 1
    assert.ok('problem' in openDatagram(key, new ReplayGuard(), tampered))
    assert.ok('problem' in openDatagram(keyOf(NEW), new ReplayGuard(), sealed))
    assert.ok('problem' in openDatagram(key, new ReplayGuard(), packet))
    assert.ok('problem' in openDatagram(key, new ReplayGuard(), Buffer.from('SK')))
  })
})

describe('HTTP between nodes', () => {
  it('accepts a signed request once, for its method and path only, and binds the answer to it', () => {
    const key = keyOf(OLD)
    const signed = signRequest(key, 'GET', '/v2/a/blobs/sha256:00')
    const replay = new ReplayGuard()
    assert.ok('problem' in verifyRequest(key, replay, 'GET', '/v2/b/blobs/sha256:00', signed.header))
    assert.ok('problem' in verifyRequest(key, replay, 'HEAD', '/v2/a/blobs/sha256:00', signed.header))
    assert.deepEqual(verifyRequest(key, replay, 'GET', '/v2/a/blobs/sha256:00', signed.header), { nonce: signed.nonce })
    assert.ok('problem' in verifyRequest(key, replay, 'GET', '/v2/a/blobs/sha256:00', signed.header))
    assert.ok('problem' in verifyRequest(keyOf(NEW), new ReplayGuard(), 'GET', '/v2/a/blobs/sha256:00', signed.header))
    for (const bad of [undefined, '', 'v1', 'v1 x y z', `v1 1 ${'g'.repeat(24)} AAAA`]) assert.ok('problem' in verifyRequest(key, replay, 'GET', '/', bad))

    const headers: Record<string, string> = { 'content-length': '42', 'docker-content-digest': 'sha256:00' }
    headers[AUTH_HEADER.toLowerCase()] = signAnswer(key, signed.nonce, 200, (name) => headers[name])
    const header = (name: string): string | undefined => headers[name.toLowerCase()]
    assert.ok(verifyAnswer(key, signed.nonce, 200, header))
    assert.ok(!verifyAnswer(key, 'another-nonce', 200, header))
    assert.ok(!verifyAnswer(key, signed.nonce, 206, header))
    headers['content-length'] = '43'
    assert.ok(!verifyAnswer(key, signed.nonce, 200, header))
  })
})
