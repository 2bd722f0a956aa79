import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { MemoryContentProvider } from '../../src/content/memory.js'
import type { DialAddress } from '../../src/net/address.js'
import type { Swarm } from '../../src/swarm/swarm.js'
import { computeMetainfo, type Metainfo } from '../../src/swarm/metainfo.js'
import { patternBytes } from './images.js'

export interface SwarmSubject {
  seeder: Swarm
  downloaders: Swarm[]
  /** Where the seeder's and downloaders' wires listen. */
  addresses: DialAddress[]
  stop(): Promise<void>
}

/** What the mirror relies on from any Swarm: seeding from content, downloads verified in order. */
export function swarmConformance(adapter: string, setup: (content: MemoryContentProvider) => Promise<SwarmSubject>): void {
  describe(`Swarm conformance: ${adapter}`, () => {
    const bytes = patternBytes(3 * 1024 * 1024 + 12345, 31, 7)
    const content = new MemoryContentProvider()
    const digest = content.addBlob(bytes)
    let metainfo: Metainfo
    let subject: SwarmSubject

    before(async () => {
      metainfo = await computeMetainfo(digest, bytes.length, (async function* () { yield bytes })())
      subject = await setup(content)
      await subject.seeder.seed(metainfo)
    })
    after(() => subject?.stop())

    it('downloads a seeded blob, verified, readable in order', async () => {
      const download = await subject.downloaders[0]!.fetch(metainfo, [subject.addresses[0]!])
      await download.waitForAll(10_000)
      assert.equal(await download.verdict, true)
      assert.ok((await download.read(0, bytes.length)).equals(bytes))
    })

    it('shares one download per blob and names it while it runs', async () => {
      const again = await subject.downloaders[0]!.fetch(metainfo, [subject.addresses[0]!])
      assert.equal(subject.downloaders[0]!.downloading(digest), again)
      assert.equal(subject.seeder.downloading(digest), undefined)
    })

    it('downloads from another downloader', async () => {
      const download = await subject.downloaders[1]!.fetch(metainfo, [subject.addresses[1]!])
      await download.waitForAll(10_000)
      assert.ok((await download.read(bytes.length - 100, 100)).equals(bytes.subarray(bytes.length - 100)))
    })

    it('reports a wire port and adds no throttle stage when no upload limit is set', () => {
      assert.ok(subject.seeder.wirePort() > 0)
      assert.equal(subject.seeder.uploadThrottle(), undefined)
    })
  })
}
