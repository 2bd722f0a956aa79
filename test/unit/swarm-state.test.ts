import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { SwarmState } from '../../src/swarm/state.js'

const KEY = 'download:sha256:x'

function started(): SwarmState {
  const state = new SwarmState({ banMs: 60_000 })
  state.apply({ type: 'transfer-started', key: KEY, digest: 'sha256:x', infoHash: 'ab', size: 4 * 32768, pieceLength: 32768, role: 'download' })
  return state
}

function block(state: SwarmState, peer: string, piece: number, offset: number, crc: number) {
  return state.apply({ type: 'bytes-received', key: KEY, peer, bytes: 16384, block: { piece, offset, length: 16384, crc } })
}

describe('swarm state', () => {
  it('credits each verified piece to the peer that sent it and counts bytes per peer', () => {
    const state = started()
    block(state, 'a:1', 0, 0, 1)
    block(state, 'a:1', 0, 16384, 2)
    state.apply({ type: 'piece-verified', key: KEY, piece: 0 })
    block(state, 'b:2', 1, 0, 3)
    block(state, 'b:2', 1, 16384, 4)
    state.apply({ type: 'piece-verified', key: KEY, piece: 1 })
    const transfer = state.transfers.get(KEY)!
    assert.deepEqual([...transfer.pieceSources], [0, 1, -1, -1])
    assert.deepEqual(transfer.sourceNames, ['a:1', 'b:2'])
    assert.equal(transfer.peers.get('a:1')?.received, 32768)
    assert.equal(transfer.verifiedPieces, 2)
  })

  it('credits verified bytes per block to the peer whose copy was kept, duplicates not counted', () => {
    const state = started()
    block(state, 'a:1', 0, 0, 1)
    block(state, 'b:2', 0, 16384, 2)
    block(state, 'a:1', 0, 16384, 2)
    state.apply({ type: 'piece-verified', key: KEY, piece: 0 })
    const peers = state.transfers.get(KEY)!.peers
    assert.equal(peers.get('a:1')?.received, 32768)
    assert.equal(peers.get('a:1')?.verified, 32768)
    assert.equal(peers.get('b:2')?.received, 16384)
    assert.equal(peers.get('b:2')?.verified, 0)
  })

  it('counts a completed HTTP stream as verified, a failed one not', () => {
    const state = new SwarmState()
    for (const [key, outcome] of [['http:1', 'complete'], ['http:2', 'failed']] as const) {
      state.apply({ type: 'transfer-started', key, digest: 'sha256:y', size: 10, role: 'http' })
      state.apply({ type: 'bytes-received', key, peer: 'a:1', bytes: 10 })
      state.apply({ type: 'transfer-finished', key, outcome })
    }
    assert.deepEqual(state.recentTransfers().map((transfer) => transfer.peers.get('a:1')?.verified), [0, 10])
  })

  it('bans the only sender of a piece that fails verification', () => {
    const state = started()
    block(state, 'bad:1', 2, 0, 9)
    block(state, 'bad:1', 2, 16384, 9)
    const actions = state.apply({ type: 'piece-failed', key: KEY, piece: 2 })
    assert.deepEqual(actions.map((action) => action.peer), ['bad:1'])
    assert.ok(state.isBanned('bad:1'))
  })

  it('with several senders, waits for the good copy and bans only who sent different bytes', () => {
    const state = started()
    block(state, 'good:1', 3, 0, 100)
    block(state, 'bad:2', 3, 16384, 666)
    assert.deepEqual(state.apply({ type: 'piece-failed', key: KEY, piece: 3 }), [])
    assert.equal(state.isBanned('good:1'), false)
    assert.equal(state.needsGoodBlocks(KEY, 3), true)
    block(state, 'good:1', 3, 0, 100)
    block(state, 'good:1', 3, 16384, 200)
    const actions = state.apply({ type: 'piece-verified', key: KEY, piece: 3, goodBlocks: new Map([[0, 100], [16384, 200]]) })
    assert.deepEqual(actions.map((action) => action.peer), ['bad:2'])
    assert.equal(state.isBanned('good:1'), false)
    assert.equal(state.needsGoodBlocks(KEY, 3), false)
  })

  it('lifts a ban when it expires', () => {
    const state = new SwarmState({ banMs: 10 })
    state.apply({ type: 'transfer-started', key: KEY, digest: 'sha256:x', size: 16384, pieceLength: 16384, role: 'download' })
    block(state, 'bad:1', 0, 0, 1)
    state.apply({ type: 'piece-failed', key: KEY, piece: 0 })
    assert.ok(state.isBanned('bad:1'))
    assert.equal(state.isBanned('bad:1', Date.now() + 20), false)
  })

  it('keeps finished transfers as recent, newest first, and ignores events for unknown transfers', () => {
    const state = started()
    state.apply({ type: 'transfer-completed', key: KEY })
    state.apply({ type: 'transfer-finished', key: KEY, outcome: 'complete' })
    assert.equal(state.transfers.size, 0)
    assert.equal(state.recentTransfers()[0]?.outcome, 'complete')
    assert.ok(state.recentTransfers()[0]?.completedAt)
    assert.deepEqual(state.apply({ type: 'piece-failed', key: KEY, piece: 0 }), [])
  })

  it('records blobs served over HTTP per peer', () => {
    const state = new SwarmState()
    state.apply({ type: 'served', digest: 'sha256:y', peer: '10.0.0.2', bytes: 5 })
    state.apply({ type: 'served', digest: 'sha256:y', peer: '10.0.0.2', bytes: 7 })
    assert.equal(state.served.get('sha256:y')?.get('10.0.0.2'), 12)
    assert.equal(state.totals.sent, 12)
  })
})
