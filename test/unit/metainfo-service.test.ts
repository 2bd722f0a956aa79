import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { MetainfoService } from '../../src/mirror/metainfo-service.js'
import type { MetainfoCache } from '../../src/swarm/metainfo-cache.js'
import type { Swarm } from '../../src/swarm/swarm.js'
import { silentLogger } from '../support/registry-app.js'
import { blobWithMetainfo } from '../support/swarm-fixtures.js'

describe('metainfo answers to peers', () => {
  it('a node still downloading a blob gives only the infohash and its wire port; once the blob hashed to its digest, the metainfo', async () => {
    const { metainfo } = await blobWithMetainfo(300_000)
    const download: { metainfo: typeof metainfo; digestMatches: boolean | undefined } = { metainfo, digestMatches: undefined }
    const swarm = { downloading: () => download, wirePort: () => 6881 } as unknown as Swarm
    const service = new MetainfoService({ content: new MemoryContentProvider(), swarm, metainfo: {} as MetainfoCache, logger: silentLogger })
    assert.deepEqual(await service.answer(metainfo.digest), { kind: 'downloading', infoHash: metainfo.infoHash, wirePort: 6881 })
    download.digestMatches = true
    assert.deepEqual(await service.answer(metainfo.digest), { kind: 'verified', metainfo, wirePort: 6881 })
  })
})
