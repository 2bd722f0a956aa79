import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { HolderPools, type HolderPool } from '../../src/mirror/holder-pool.js'
import { HolderHealth } from '../../src/mirror/holder-health.js'
import type { PeerClient } from '../../src/mirror/peer-client.js'
import { NodeReputation } from '../../src/net/node-reputation.js'
import { DISCOVERY_INTERVAL_MS, FIRST_DISCOVERY_ROUNDS_MS, SwarmJoins } from '../../src/mirror/swarm-join.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { MemoryRoutingNetwork } from '../../src/routing/memory.js'
import { MemorySwarm, MemorySwarmNetwork } from '../../src/swarm/memory.js'
import { MetainfoCache } from '../../src/swarm/metainfo-cache.js'
import type { Metainfo } from '../../src/swarm/metainfo.js'
import { silentLogger } from '../support/registry-app.js'
import { eventually } from '../support/eventually.js'
import { ManualClock } from '../support/clock.js'
import type { Swarm } from '../../src/swarm/swarm.js'
import { blobWithMetainfo } from '../support/swarm-fixtures.js'

/** What each holder (port = index + 1) answers: metainfo, only an infohash (it downloads), or nothing. */
async function setup(answers: (Metainfo | { downloading: string } | undefined)[], clock?: ManualClock) {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-join-'))
  const content = new MemoryContentProvider()
  const network = new MemoryRoutingNetwork()
  const { metrics } = createMetricsRegistry()
  const swarm = new MemorySwarm({ content, network: new MemorySwarmNetwork() }, { address: { host: '10.0.0.9', port: 9 }, dataDir: dir })
  swarm.start()
  const asked: number[] = []
  const peers = {
    async fetchMetainfo(peer: { port: number }) {
      asked.push(peer.port)
      const answer = answers[peer.port - 1]
      if (!answer) return undefined
      if ('downloading' in answer) return { infoHash: answer.downloading, wirePort: 6000 + peer.port }
      return { metainfo: answer, infoHash: answer.infoHash, wirePort: 6000 + peer.port }
    },
  } as unknown as PeerClient
  const held: string[] = []
  const metainfo = new MetainfoCache({ content, logger: silentLogger, metrics }, { dataDir: dir })
  const router = network.router({ host: '10.0.0.9', port: 9 })
  const reputation = new NodeReputation()
  const health = new HolderHealth({ reputation })
  const pools = new HolderPools({ router, health, logger: silentLogger, ...(clock ? { clock } : {}) }, { stallMs: 500 })
  const joins = new SwarmJoins({ pools, peers, swarm, metainfo, advertiser: { hold: (key) => held.push(key), release: () => {} }, health, logger: silentLogger, reputation, ...(clock ? { clock } : {}) }, { stallMs: 500 })
  const holders = (digest: string): HolderPool => {
    answers.forEach((_, index) => network.router({ host: '10.0.0.1', port: index + 1 }).advertise([digest]))
    return pools.pool(digest)
  }
  /** A join of the blob `metainfo` describes, its size as holders would report it. */
  const joinBlob = (blob: Metainfo, through: SwarmJoins = joins) => through.join(blob.digest, holders(blob.digest), blob.length)
  return { joins, joinBlob, swarm, asked, held, holders, health, pools, reputation, peers, metainfo, network, async stop() { joins.stop(); await rm(dir, { recursive: true, force: true }) } }
}

describe('swarm joins', () => {
  it('learns each holder\'s wire address from its metainfo answer: one node, one name', async () => {
    const { metainfo } = await blobWithMetainfo(300_000)
    const subject = await setup([metainfo])
    try {
      assert.equal(subject.reputation.nodeOf('10.0.0.1:6001'), '10.0.0.1:6001', 'premise: not known before')
      assert.ok(await subject.joinBlob(metainfo))
      assert.equal(subject.reputation.nodeOf('10.0.0.1:6001'), '10.0.0.1:1')
    } finally {
      await subject.stop()
    }
  })

  it('starts one download per digest for concurrent requests and announces it while it runs', async () => {
    const { metainfo } = await blobWithMetainfo(300_000)
    const subject = await setup([metainfo])
    try {
      const [a, b] = await Promise.all([subject.joinBlob(metainfo), subject.joinBlob(metainfo)])
      assert.ok(a && a === b)
      assert.equal(subject.swarm.downloading(metainfo.digest), a)
      assert.deepEqual(subject.held, [metainfo.digest])
    } finally {
      await subject.stop()
    }
  })

  it('answers undefined when no holder gives metainfo', async () => {
    const { metainfo } = await blobWithMetainfo(300_000)
    const subject = await setup([undefined, undefined])
    try {
      assert.equal(await subject.joinBlob(metainfo), undefined)
      assert.deepEqual(subject.asked.sort(), [1, 2])
      assert.equal(subject.swarm.downloading(metainfo.digest), undefined)
    } finally {
      await subject.stop()
    }
  })

  it('takes the first metainfo that answers when another holder has none', async () => {
    const { metainfo } = await blobWithMetainfo(300_000)
    const subject = await setup([undefined, metainfo])
    try {
      const download = await subject.joinBlob(metainfo)
      assert.equal(download?.metainfo.infoHash, metainfo.infoHash)
    } finally {
      await subject.stop()
    }
  })

  it('refuses metainfo whose length is not the size holders report, bans its holder and uses another holder\'s', async () => {
    const { metainfo } = await blobWithMetainfo(300_000)
    const { metainfo: longer } = await blobWithMetainfo(400_000)
    const forged = { ...longer, digest: metainfo.digest }
    const subject = await setup([forged, metainfo])
    try {
      const download = await subject.joinBlob(metainfo)
      assert.equal(download?.metainfo.infoHash, metainfo.infoHash)
      assert.ok(subject.health.isBanned({ host: '10.0.0.1', port: 1 }))
      assert.ok(!subject.health.isBanned({ host: '10.0.0.1', port: 2 }))
    } finally {
      await subject.stop()
    }
  })

  it('never adopts metainfo from nodes that only download the blob: with no holder there is no swarm', async () => {
    const { metainfo } = await blobWithMetainfo(300_000)
    const subject = await setup([{ downloading: metainfo.infoHash }, { downloading: metainfo.infoHash }])
    try {
      assert.equal(await subject.joinBlob(metainfo), undefined)
      assert.equal(subject.swarm.downloading(metainfo.digest), undefined)
    } finally {
      await subject.stop()
    }
  })

  it('joins downloaders whose infohash matches the holder\'s metainfo', async () => {
    const { metainfo } = await blobWithMetainfo(300_000)
    const subject = await setup([{ downloading: metainfo.infoHash }, metainfo])
    const dialled: number[] = []
    const fetch = subject.swarm.fetch.bind(subject.swarm)
    subject.swarm.fetch = (used, peers) => {
      dialled.push(...peers.map((peer) => peer.port))
      return fetch(used, peers)
    }
    try {
      const download = await subject.joinBlob(metainfo)
      assert.equal(download?.metainfo.infoHash, metainfo.infoHash)
      assert.deepEqual(subject.asked.sort(), [1, 2])
      assert.deepEqual(dialled.sort(), [6001, 6002], 'the downloader\'s wire is dialled with the holder\'s')
    } finally {
      await subject.stop()
    }
  })

  it('while the download runs, a holder that appeared since is asked at the next discovery round: the first ones sooner, each a fresh lookup', async () => {
    const clock = new ManualClock()
    const { metainfo } = await blobWithMetainfo(300_000)
    const answers: (Metainfo | undefined)[] = [metainfo]
    const subject = await setup(answers, clock)
    const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20))
    try {
      assert.ok(await subject.joinBlob(metainfo))
      assert.deepEqual(subject.asked, [1])
      const waits = [...FIRST_DISCOVERY_ROUNDS_MS, DISCOVERY_INTERVAL_MS, DISCOVERY_INTERVAL_MS]
      for (const [round, waitMs] of waits.entries()) {
        const port = round + 2
        answers.push(metainfo)
        subject.network.router({ host: '10.0.0.1', port }).advertise([metainfo.digest])
        await settle()
        clock.advance(waitMs - 1)
        await settle()
        assert.ok(!subject.asked.includes(port), `holder ${port} asked before round ${round + 1} (${waitMs} ms)`)
        clock.advance(1)
        // Bounded below every wait, so only the clock can have moved discovery on.
        await eventually(`holder ${port} asked at round ${round + 1}`, () => subject.asked.includes(port), FIRST_DISCOVERY_ROUNDS_MS[0] / 2, 5)
      }
    } finally {
      await subject.stop()
    }
  })

  it('a blob that fails its digest bans the holder whose metainfo it used; that infohash is refused from anyone, the next join uses another', async () => {
    const { metainfo } = await blobWithMetainfo(300_000)
    const { metainfo: other } = await blobWithMetainfo(300_000)
    const forged = { ...other, digest: metainfo.digest }
    const subject = await setup([forged, metainfo, forged])
    const fetched: string[] = []
    // A swarm whose downloads finish at once: the forged metainfo's blob fails the digest.
    const swarm = {
      downloading: () => undefined,
      fetch: async (used: typeof metainfo) => {
        fetched.push(used.infoHash)
        const mismatch = used.infoHash !== metainfo.infoHash
        return { metainfo: used, digestMatches: !mismatch, verdict: Promise.resolve(!mismatch) }
      },
    }
    const joins = new SwarmJoins({ pools: subject.pools, peers: subject.peers, swarm: swarm as unknown as Swarm, metainfo: subject.metainfo,
      advertiser: { hold: () => {}, release: () => {} }, health: subject.health, logger: silentLogger }, { stallMs: 500 })
    try {
      const first = await subject.joinBlob(metainfo, joins)
      assert.equal(first?.metainfo.infoHash, forged.infoHash, 'the first holder to answer gave the forged metainfo')
      await eventually('the forger banned', () => subject.health.isBanned({ host: '10.0.0.1', port: 1 }), 2000, 10)
      const second = await subject.joinBlob(metainfo, joins)
      assert.equal(second?.metainfo.infoHash, metainfo.infoHash)
      assert.ok(!subject.health.isBanned({ host: '10.0.0.1', port: 2 }))
      assert.equal(fetched[0], forged.infoHash)
      assert.equal(fetched.at(-1), metainfo.infoHash)
    } finally {
      joins.stop()
      await subject.stop()
    }
  })
})
