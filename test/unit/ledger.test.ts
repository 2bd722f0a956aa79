import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { TransferLedger } from '../../src/observe/ledger.js'
import { ManualClock } from '../support/clock.js'

const KEY = 'download:sha256:x'

function started(clock = new ManualClock()): TransferLedger {
  const ledger = new TransferLedger(clock)
  ledger.record({ type: 'transfer-started', key: KEY, digest: 'sha256:x', infoHash: 'ab', size: 4 * 32768, pieceLength: 32768, role: 'download' })
  return ledger
}

describe('transfer ledger', () => {
  it('credits each verified piece to its source and counts bytes per peer', () => {
    const ledger = started()
    ledger.record({ type: 'bytes-received', key: KEY, peer: 'a:1', bytes: 32768 })
    ledger.record({ type: 'piece-verified', key: KEY, piece: 0, source: 'a:1', verifiedBytes: new Map([['a:1', 32768]]) })
    ledger.record({ type: 'bytes-received', key: KEY, peer: 'b:2', bytes: 32768 })
    ledger.record({ type: 'piece-verified', key: KEY, piece: 1, source: 'b:2', verifiedBytes: new Map([['b:2', 32768]]) })
    const transfer = ledger.transfers.get(KEY)!
    assert.deepEqual([...transfer.pieceSources], [0, 1, -1, -1])
    assert.deepEqual(transfer.sourceNames, ['a:1', 'b:2'])
    assert.equal(transfer.peers.get('a:1')?.received, 32768)
    assert.equal(transfer.peers.get('a:1')?.verified, 32768)
    assert.equal(transfer.verifiedPieces, 2)
    assert.equal(ledger.totals.piecesVerified, 2)
  })

  it('counts a piece verified twice once', () => {
    const ledger = started()
    for (let i = 0; i < 2; i++) ledger.record({ type: 'piece-verified', key: KEY, piece: 0, source: 'a:1', verifiedBytes: new Map([['a:1', 32768]]) })
    assert.equal(ledger.transfers.get(KEY)!.verifiedPieces, 1)
    assert.equal(ledger.transfers.get(KEY)!.peers.get('a:1')?.verified, 32768)
  })

  it('counts a completed HTTP stream as verified, a failed one not', () => {
    const ledger = new TransferLedger()
    for (const [key, outcome] of [['http:1', 'complete'], ['http:2', 'failed']] as const) {
      ledger.record({ type: 'transfer-started', key, digest: 'sha256:y', size: 10, role: 'http' })
      ledger.record({ type: 'bytes-received', key, peer: 'a:1', bytes: 10 })
      ledger.record({ type: 'transfer-finished', key, outcome })
    }
    assert.deepEqual(ledger.recentTransfers().map((transfer) => transfer.peers.get('a:1')?.verified), [0, 10])
  })

  it('stamps transfers with the clock and keeps finished ones as recent, newest first', () => {
    const clock = new ManualClock()
    const ledger = started(clock)
    const startedAt = clock.now()
    clock.advance(1500)
    ledger.record({ type: 'transfer-completed', key: KEY })
    clock.advance(500)
    ledger.record({ type: 'transfer-finished', key: KEY, outcome: 'complete' })
    assert.equal(ledger.transfers.size, 0)
    const [recent] = ledger.recentTransfers()
    assert.deepEqual([recent?.outcome, recent?.startedAt, recent?.completedAt, recent?.finishedAt], ['complete', startedAt, startedAt + 1500, startedAt + 2000])
    ledger.record({ type: 'bytes-received', key: KEY, peer: 'a:1', bytes: 1 })
    assert.equal(ledger.totals.received, 0, 'events for unknown transfers are ignored')
  })

  it('measures rates over the clock', () => {
    const clock = new ManualClock(0)
    const ledger = started(clock)
    for (let second = 0; second < 5; second++) {
      ledger.record({ type: 'bytes-received', key: KEY, peer: 'a:1', bytes: 1000 })
      clock.advance(1000)
    }
    assert.equal(ledger.transfers.get(KEY)!.downloadRate.rate(), 1000)
  })

  it('records blobs served per peer, mirror answers and bans', () => {
    const ledger = new TransferLedger()
    ledger.record({ type: 'served', digest: 'sha256:y', peer: '10.0.0.2', bytes: 5 })
    ledger.record({ type: 'served', digest: 'sha256:y', peer: '10.0.0.2', bytes: 7 })
    ledger.record({ type: 'mirror-answered', source: 'swarm', bytes: 100 })
    ledger.record({ type: 'peer-banned', peer: 'bad:1' })
    assert.equal(ledger.served.get('sha256:y')?.get('10.0.0.2'), 12)
    assert.equal(ledger.totals.sent, 12)
    assert.deepEqual(ledger.mirror.swarm, { requests: 1, bytes: 100 })
    assert.equal(ledger.totals.bans, 1)
  })
})
