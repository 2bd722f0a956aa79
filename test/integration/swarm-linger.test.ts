import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { TransferLedger, type LedgerEvent } from '../../src/observe/ledger.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { BanPolicy } from '../../src/swarm/ban-policy.js'
import { SwarmBlobStream } from '../../src/swarm/blob-stream.js'
import { computeMetainfo, type Metainfo } from '../../src/swarm/metainfo.js'
import { MetainfoCache } from '../../src/swarm/metainfo-cache.js'
import { WebTorrentSwarm } from '../../src/swarm/webtorrent-swarm.js'
import { ManualClock } from '../support/clock.js'
import { eventually } from '../support/eventually.js'
import { patternBytes } from '../support/images.js'
import { freePort } from '../support/ports.js'
import { silentLogger } from '../support/registry-app.js'

const LINGER_MS = 1_000
/** More than the linger plus one housekeeping round (5 s), in housekeeping rounds. */
const ROUNDS_PAST_LINGER = 3

describe('a finished download and its readers (webtorrent on loopback, housekeeping on the clock)', () => {
  const clock = new ManualClock()
  const bytes = patternBytes(3 * 2 ** 20 + 5, 13, 3)
  const events: LedgerEvent[] = []
  let dir: string
  let metainfo: Metainfo
  const swarms: WebTorrentSwarm[] = []

  async function startSwarm(content: MemoryContentProvider, name: string): Promise<WebTorrentSwarm> {
    const { metrics } = createMetricsRegistry()
    const ledger = new (class extends TransferLedger {
      override record(event: LedgerEvent): void {
        if (name === 'downloader') events.push(event)
        super.record(event)
      }
    })()
    const wirePort = await freePort()
    const swarm = new WebTorrentSwarm({ content, metainfo: new MetainfoCache({ content, logger: silentLogger, metrics }, { dataDir: join(dir, name) }), ledger, bans: new BanPolicy(), logger: silentLogger, metrics, clock },
      { dataDir: join(dir, name), wirePort, identity: { host: '127.0.0.1', port: wirePort }, lingerMs: LINGER_MS })
    await swarm.start()
    swarms.push(swarm)
    return swarm
  }

  /** Housekeeping rounds run one after another (each timed from the end of the last), so time moves a round at a time. */
  async function passHousekeepingRounds(rounds: number): Promise<void> {
    for (let round = 0; round < rounds; round++) {
      clock.advance(5_000)
      await new Promise((resolve) => setTimeout(resolve, 30))
    }
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-linger-'))
    const content = new MemoryContentProvider()
    const digest = content.addBlob(bytes)
    metainfo = await computeMetainfo(digest, bytes.length, (async function* () { yield bytes })())
  })
  after(async () => {
    for (const swarm of swarms) await swarm.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('is kept while a reader reads it, past the linger; dropped once the linger passes after the last reader left', async () => {
    const seederContent = new MemoryContentProvider()
    seederContent.addBlob(bytes)
    const seeder = await startSwarm(seederContent, 'seeder')
    const downloader = await startSwarm(new MemoryContentProvider(), 'downloader')
    await seeder.seed(metainfo)
    const download = await downloader.fetch(metainfo, [{ host: '127.0.0.1', port: seeder.wirePort() }])
    await eventually('the download complete and verified', () => events.some((event) => event.type === 'transfer-completed'))
    // A request that joined the finished download: its reader has not read a byte yet.
    const reader = new SwarmBlobStream(download, { start: 0, end: bytes.length - 1 }, 10_000)
    await passHousekeepingRounds(ROUNDS_PAST_LINGER)
    assert.equal(downloader.downloading(metainfo.digest), download, 'the download was dropped under its reader')
    const chunks: Buffer[] = []
    for await (const chunk of reader) chunks.push(chunk as Buffer)
    assert.ok(Buffer.concat(chunks).equals(bytes))
    await passHousekeepingRounds(ROUNDS_PAST_LINGER)
    assert.equal(downloader.downloading(metainfo.digest), undefined, 'the download outlived its linger after the reader left')
  })
})
