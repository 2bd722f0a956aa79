import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ClusterMembers, DEFAULT_MEMBERS_REFRESH_MS, MEMBERS_KEY } from '../../src/routing/members.js'
import { MemoryRoutingNetwork } from '../../src/routing/memory.js'
import { ManualClock } from '../support/clock.js'
import { eventually } from '../support/eventually.js'
import { silentLogger } from '../support/registry-app.js'

describe('the cluster\'s nodes, as the DHT knows them', () => {
  it('announces this node, finds the others, looks again every 2 s while it knows nobody and every 15 s after, on the clock', async () => {
    const clock = new ManualClock()
    const network = new MemoryRoutingNetwork()
    const node = (port: number) => ({ host: '10.0.0.1', port })
    const router = network.router(node(1))
    const members = new ClusterMembers({ router, announce: (key) => router.advertise([key]), logger: silentLogger, clock })
    members.start()
    members.start()
    try {
      assert.ok(network.records.get(MEMBERS_KEY)?.has('10.0.0.1:1'), 'this node announced')
      await eventually('the first lookup', () => router.lookups.get(MEMBERS_KEY) === 1, 1_000, 5)
      assert.deepEqual([...members.list().keys()], [])
      network.router(node(2)).advertise([MEMBERS_KEY])
      clock.advance(1_999)
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.equal(router.lookups.get(MEMBERS_KEY), 1, 'looked up again before 2 s')
      clock.advance(1)
      await eventually('node 2 found at the next lookup', () => members.list().has('10.0.0.1:2'), 1_000, 5)
      network.router(node(3)).advertise([MEMBERS_KEY])
      clock.advance(DEFAULT_MEMBERS_REFRESH_MS - 1)
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.ok(!members.list().has('10.0.0.1:3'), 'looked up again before the refresh interval')
      clock.advance(1)
      await eventually('node 3 found at the refresh', () => members.list().has('10.0.0.1:3'), 1_000, 5)
    } finally {
      members.stop()
      members.stop()
    }
  })
})
