import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { Advertiser } from '../../src/routing/advertiser.js'
import { MemoryRoutingNetwork } from '../../src/routing/memory.js'
import { buildImage } from '../support/images.js'
import { eventually } from '../support/eventually.js'
import { silentLogger } from '../support/registry-app.js'

function until(check: () => boolean, what: string): Promise<unknown> {
  return eventually(what, check, 2000, 20)
}

describe('advertiser', () => {
  const image = buildImage({ registry: 'registry.test', repository: 'team/app', tag: 'v1', layerSizes: [10_000, 20_000], withIndex: true })

  function setup(resolveTags: boolean, registryFilters: RegExp[] = []) {
    const content = new MemoryContentProvider()
    for (const item of image.blobs) content.addBlob(item.bytes)
    content.setImage(image.name, { digest: image.target.digest, size: image.target.bytes.length, mediaType: image.target.mediaType })
    const router = new MemoryRoutingNetwork().router({ host: '10.0.0.1', port: 5000 })
    const { metrics, registry } = createMetricsRegistry()
    const prefetched: string[] = []
    const advertiser = new Advertiser({ content, watcher: content, router, logger: silentLogger, metrics, prefetch: (blobs) => prefetched.push(...blobs.map((blob) => blob.digest)) },
      { resolveTags, debounceMs: 10, prefetchMinSize: 15_000, registryFilters })
    return { content, router, advertiser, registry, prefetched }
  }

  it('announces every blob of every image and its tag on start, and prefetches metainfo of large ones', async () => {
    const { router, advertiser, registry, prefetched } = setup(true)
    advertiser.start()
    try {
      await until(() => router.advertisedKeys().size === image.blobs.length + 1, 'all keys advertised')
      for (const item of image.blobs) assert.ok(router.advertisedKeys().has(item.digest))
      assert.ok(router.advertisedKeys().has('registry.test/team/app:v1'))
      assert.deepEqual(prefetched, [image.layers[1]!.digest])
      assert.match(await registry.getSingleMetricAsString('shoal_advertised_image_digests'), /shoal_advertised_image_digests 5/)
    } finally {
      await advertiser.stop()
    }
  })

  it('does not announce images that --registry-filters exclude, and announces them without filters', async () => {
    const other = buildImage({ registry: 'other.test', repository: 'team/tool', tag: 'v2', layerSizes: [3000] })
    const { content, router, advertiser } = setup(true, [/^registry\.test\//])
    for (const item of other.blobs) content.addBlob(item.bytes)
    content.setImage(other.name, { digest: other.target.digest, size: other.target.bytes.length, mediaType: other.target.mediaType })
    advertiser.start()
    try {
      await until(() => router.advertisedKeys().size === other.blobs.length + 1, 'the other image advertised')
      assert.ok(router.advertisedKeys().has('other.test/team/tool:v2'))
      assert.ok(!router.advertisedKeys().has('registry.test/team/app:v1'))
      assert.ok(!router.advertisedKeys().has(image.layers[0]!.digest))
    } finally {
      await advertiser.stop()
    }
  })

  it('does not announce tags without --resolve-tags', async () => {
    const { router, advertiser } = setup(false)
    advertiser.start()
    try {
      await until(() => router.advertisedKeys().size === image.blobs.length, 'blobs advertised')
      assert.ok(![...router.advertisedKeys()].some((key) => key.includes(':v1')))
    } finally {
      await advertiser.stop()
    }
  })

  it('withdraws what is deleted, but keeps keys held for downloads', async () => {
    const { content, router, advertiser } = setup(true)
    advertiser.start()
    try {
      await until(() => router.advertisedKeys().size === image.blobs.length + 1, 'all keys advertised')
      advertiser.hold('sha256:in-progress')
      content.deleteImage(image.name)
      await until(() => router.advertisedKeys().size === 1, 'image keys withdrawn')
      assert.deepEqual([...router.advertisedKeys()], ['sha256:in-progress'])
      advertiser.release('sha256:in-progress')
      assert.equal(router.advertisedKeys().size, 0)
    } finally {
      await advertiser.stop()
    }
  })

  it('stops cleanly, twice', async () => {
    const { advertiser } = setup(true)
    advertiser.start()
    await advertiser.stop()
    await advertiser.stop()
  })
})
