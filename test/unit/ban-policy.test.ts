import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { NodeReputation } from '../../src/net/node-reputation.js'
import { BanPolicy } from '../../src/swarm/ban-policy.js'
import { ManualClock } from '../support/clock.js'

const KEY = 'download:sha256:x'

/** A 16 KiB block whose every byte is `fill`. */
function block(policy: BanPolicy, peer: string, piece: number, offset: number, fill: number, length = 16384): void {
  policy.blockReceived(KEY, peer, { piece, offset, data: Buffer.alloc(length, fill) })
}

function pieceOf(...fills: number[]): Buffer {
  return Buffer.concat(fills.map((fill) => Buffer.alloc(16384, fill)))
}

describe('ban policy', () => {
  it('credits a verified piece to its sender and the kept copy of each block to whoever sent it', () => {
    const policy = new BanPolicy()
    block(policy, 'a:1', 0, 0, 1)
    block(policy, 'b:2', 0, 16384, 2)
    block(policy, 'a:1', 0, 16384, 2)
    const verified = policy.pieceVerified(KEY, 0)
    assert.equal(verified.source, 'b:2')
    assert.deepEqual([...verified.verifiedBytes], [['a:1', 32768]])
    assert.deepEqual(verified.bans, [])
  })

  it('bans the only sender of a piece that fails verification', () => {
    const policy = new BanPolicy()
    block(policy, 'bad:1', 2, 0, 9)
    block(policy, 'bad:1', 2, 16384, 9)
    assert.deepEqual(policy.pieceFailed(KEY, 2).map((ban) => ban.peer), ['bad:1'])
    assert.ok(policy.isBanned('bad:1'))
    assert.equal(policy.isBanned('good:1'), false)
  })

  it('with several senders, waits for the good copy and bans only who sent different bytes', () => {
    const policy = new BanPolicy()
    block(policy, 'good:1', 3, 0, 100)
    block(policy, 'bad:2', 3, 16384, 666)
    assert.deepEqual(policy.pieceFailed(KEY, 3), [])
    assert.equal(policy.isBanned('good:1'), false)
    assert.equal(policy.needsVerifiedPiece(KEY, 3), true)
    block(policy, 'good:1', 3, 0, 100)
    block(policy, 'good:1', 3, 16384, 200)
    const { bans } = policy.pieceVerified(KEY, 3, pieceOf(100, 200))
    assert.deepEqual(bans.map((ban) => ban.peer), ['bad:2'])
    assert.equal(policy.isBanned('good:1'), false)
    assert.equal(policy.needsVerifiedPiece(KEY, 3), false)
  })

  it('compares a whole-piece span from HTTP with the same span of the verified piece, not block by block', () => {
    const policy = new BanPolicy()
    block(policy, 'wire:1', 5, 0, 7)
    block(policy, 'http:1', 5, 16384, 8, 3 * 16384)
    assert.deepEqual(policy.pieceFailed(KEY, 5), [])
    block(policy, 'http:1', 5, 0, 1, 4 * 16384)
    const { bans } = policy.pieceVerified(KEY, 5, pieceOf(1, 8, 8, 8))
    assert.deepEqual(bans.map((ban) => ban.peer), ['wire:1'])
  })

  it('bans for exactly banMs and lists bans with their end', () => {
    const clock = new ManualClock()
    const reputation = new NodeReputation(clock)
    const policy = new BanPolicy(reputation, { banMs: 10_000 })
    block(policy, 'bad:1', 0, 0, 1)
    const [ban] = policy.pieceFailed(KEY, 0)
    assert.equal(ban?.forMs, 10_000)
    assert.deepEqual(reputation.banned(), [{ peer: 'bad:1', until: new Date(clock.now() + 10_000).toISOString() }])
    clock.advance(9_999)
    assert.ok(policy.isBanned('bad:1'))
    clock.advance(1)
    assert.equal(policy.isBanned('bad:1'), false)
    assert.deepEqual(reputation.banned(), [])
  })

  it('does not ban twice while a ban runs, and forgets the blocks of a finished transfer', () => {
    const policy = new BanPolicy()
    block(policy, 'bad:1', 0, 0, 1)
    assert.equal(policy.pieceFailed(KEY, 0).length, 1)
    block(policy, 'bad:1', 1, 0, 1)
    assert.deepEqual(policy.pieceFailed(KEY, 1), [])
    block(policy, 'x:1', 4, 0, 1)
    block(policy, 'y:1', 4, 0, 2)
    policy.pieceFailed(KEY, 4)
    assert.ok(policy.needsVerifiedPiece(KEY, 4))
    policy.forget(KEY)
    assert.equal(policy.needsVerifiedPiece(KEY, 4), false)
    assert.equal(policy.pieceVerified(KEY, 4).source, undefined)
  })
})
