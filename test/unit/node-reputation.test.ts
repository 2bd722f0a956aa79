import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import Protocol from 'bittorrent-protocol'
import type { Wire } from 'webtorrent'
import { HolderHealth } from '../../src/mirror/holder-health.js'
import { HolderPools } from '../../src/mirror/holder-pool.js'
import { raceHolders } from '../../src/mirror/race.js'
import { NodeReputation } from '../../src/net/node-reputation.js'
import { TransferLedger } from '../../src/observe/ledger.js'
import { MemoryRoutingNetwork } from '../../src/routing/memory.js'
import type { PeerAddress } from '../../src/routing/router.js'
import { BanPolicy } from '../../src/swarm/ban-policy.js'
import { encodePeerId } from '../../src/swarm/peer-id.js'
import { acceptPeerIdentity, announceNode, announcedNode } from '../../src/swarm/wire-label.js'
import { ManualClock } from '../support/clock.js'
import { eventually } from '../support/eventually.js'
import { silentLogger } from '../support/registry-app.js'

const KEY = 'sha256:' + 'cd'.repeat(32)
/** One node seen at two addresses: its registry API (what the DHT names) and its BitTorrent wire. */
const LIAR = { registry: { host: '10.0.0.7', port: 5000 }, wire: '10.0.0.7:5001' }
const HONEST: PeerAddress = { host: '10.0.0.8', port: 5000 }

function wireBan(policy: BanPolicy, peer: string): void {
  policy.blockReceived(KEY, peer, { piece: 0, offset: 0, data: Buffer.alloc(16384, 1) })
  assert.equal(policy.pieceFailed(KEY, 0).length, 1, 'convicted over the wire')
}

/** The holders of KEY the mirror would ask for a blob's size, in the order asked. */
async function askedForSize(health: HolderHealth): Promise<string[]> {
  const network = new MemoryRoutingNetwork()
  for (const holder of [LIAR.registry, HONEST]) network.router(holder).advertise([KEY])
  const pool = new HolderPools({ router: network.router({ host: '10.0.0.9', port: 9 }), health, logger: silentLogger }, { stallMs: 5_000 }).pool(KEY)
  const asked: string[] = []
  await pool.nth(1, 1_000)
  const answer = await raceHolders(pool, { question: 'size', maxHolders: 8, maxInFlight: 4, stallMs: 5_000 }, async (peer) => {
    asked.push(`${peer.host}:${peer.port}`)
    return 1234
  }, { signal: AbortSignal.timeout(5_000) })
  assert.equal(answer?.value, 1234)
  return asked
}

describe('one reputation per node', () => {
  it('a node tells which node it is in its BEP 10 handshake: wire address and registry address name one node', async () => {
    const a = new Protocol()
    const b = new Protocol()
    a.pipe(b).pipe(a)
    try {
      announceNode(a as unknown as Wire, 5000)
      a.handshake('ab'.repeat(20), encodePeerId('10.0.0.7', 5001).toString('hex'))
      b.handshake('ab'.repeat(20), encodePeerId('10.0.0.8', 5001).toString('hex'))
      await eventually('a\'s extended handshake at b', () => Object.keys(b.peerExtendedHandshake ?? {}).length > 0, 3_000, 5)
      const wire = b as unknown as Wire
      assert.equal(acceptPeerIdentity(wire), LIAR.wire)
      assert.equal(announcedNode(wire), '10.0.0.7:5000')
    } finally {
      a.destroy()
      b.destroy()
    }
  })

  it('a node banned for a bad piece over the wire is not asked over HTTP', async () => {
    const reputation = new NodeReputation()
    const policy = new BanPolicy(reputation)
    const health = new HolderHealth({ reputation })
    reputation.sameNode(LIAR.wire, '10.0.0.7:5000')
    assert.deepEqual(await askedForSize(new HolderHealth({ reputation: new NodeReputation() })), ['10.0.0.7:5000'], 'premise: unbanned, it is asked first')
    wireBan(policy, LIAR.wire)
    assert.ok(health.isBanned(LIAR.registry))
    assert.deepEqual(await askedForSize(health), ['10.0.0.8:5000'])
  })

  it('a node that lied over HTTP is refused over the wire, whether its wire address is learnt before or after', () => {
    const clock = new ManualClock()
    const reputation = new NodeReputation(clock)
    const policy = new BanPolicy(reputation)
    const health = new HolderHealth({ reputation, clock })
    health.lied(LIAR.registry, KEY, 'its metainfo is longer than the blob')
    assert.equal(policy.isBanned(LIAR.wire), false, 'premise: the wire address is not known to be that node yet')
    reputation.sameNode(LIAR.wire, '10.0.0.7:5000')
    assert.ok(policy.isBanned(LIAR.wire))
    assert.equal(policy.isBanned('10.0.0.8:5001'), false)
    assert.deepEqual(reputation.banned().map((ban) => ban.peer), ['10.0.0.7:5000'], 'one row per node')
  })

  it('a ban earned over the wire before the node is known holds for its registry address once it is', () => {
    const reputation = new NodeReputation()
    const health = new HolderHealth({ reputation })
    wireBan(new BanPolicy(reputation), LIAR.wire)
    assert.equal(health.isBanned(LIAR.registry), false)
    reputation.sameNode(LIAR.wire, '10.0.0.7:5000')
    assert.ok(health.isBanned(LIAR.registry))
    assert.deepEqual(reputation.banned().map((ban) => ban.peer), ['10.0.0.7:5000'])
  })

  it('stats count a node once, whichever of its addresses sent the bytes', () => {
    const reputation = new NodeReputation()
    reputation.sameNode(LIAR.wire, '10.0.0.7:5000')
    const ledger = new TransferLedger(undefined, { nodeOf: (address) => reputation.nodeOf(address) })
    ledger.record({ type: 'transfer-started', key: 't', digest: KEY, size: 100, role: 'download' })
    ledger.record({ type: 'bytes-received', key: 't', peer: LIAR.wire, bytes: 60 })
    ledger.record({ type: 'bytes-received', key: 't', peer: '10.0.0.7:5000', bytes: 40 })
    assert.deepEqual([...ledger.transfers.get('t')!.peers].map(([peer, counters]) => [peer, counters.received]), [['10.0.0.7:5000', 100]])
  })
})
