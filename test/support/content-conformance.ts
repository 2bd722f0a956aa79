import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ContentNotFoundError, type ContentEvent, type ContentProvider, type ContentWatcher } from '../../src/content/provider.js'
import { collect } from '../../src/content/read.js'
import { takeInventory } from '../../src/content/walk.js'
import type { Digest } from '../../src/oci/digest.js'
import { tagReference } from '../../src/oci/reference.js'
import { buildImage, type TestImage } from './images.js'

export interface ConformanceFixture {
  image: TestImage
}

export interface ConformanceSubject {
  provider: ContentProvider
  watcher: ContentWatcher
  /** Deletes the fixture's image record (not its blobs), as `crictl rmi` would. */
  deleteImage(): Promise<void>
  /** How the watcher reports a deleted image: by name, or (a polled directory) as a resync. */
  deletion: 'image-delete' | 'resync'
  cleanup(): Promise<void>
}

/** The fixture every adapter is tested with: an index over a manifest with two layers. */
export function conformanceImage(registry: string): TestImage {
  return buildImage({ registry, repository: 'conformance/app', tag: 'v1', layerSizes: [700_000, 1_000], withIndex: true })
}

/**
 * One suite for every ContentProvider/ContentWatcher adapter (in-memory fake, OCI layout,
 * containerd): what the registry and the advertiser rely on.
 */
export function contentProviderConformance(adapter: string, registry: string, setup: (fixture: ConformanceFixture) => Promise<ConformanceSubject>): void {
  describe(`ContentProvider conformance: ${adapter}`, () => {
    const image = conformanceImage(registry)
    let subject: ConformanceSubject
    before(async () => {
      subject = await setup({ image })
    })
    after(() => subject?.cleanup())

    it('lists the image with its target', async () => {
      const images = await subject.provider.listImages()
      const record = images.find((item) => item.name === image.name)
      assert.ok(record, `${image.name} in ${images.map((item) => item.name).join(', ')}`)
      assert.equal(record.target.digest, image.target.digest)
      assert.equal(record.target.size, image.target.bytes.length)
    })

    it('resolves the image name and nothing else', async () => {
      assert.equal(await subject.provider.resolve(image.name), image.target.digest)
      assert.equal(await subject.provider.resolve(`${registry}/conformance/app:missing`), undefined)
    })

    it('reports sizes of present blobs only', async () => {
      for (const item of image.blobs) assert.deepEqual(await subject.provider.stat(item.digest), { digest: item.digest, size: item.bytes.length })
      assert.equal(await subject.provider.stat(`sha256:${'1'.repeat(64)}` as Digest), undefined)
    })

    it('reads whole blobs and ranges byte for byte', async () => {
      const layer = image.layers[0]!
      assert.ok((await collect(await subject.provider.open(layer.digest), 1 << 30)).equals(layer.bytes))
      const ranged = await collect(await subject.provider.open(layer.digest, { range: { start: 123_456, end: 654_320 } }), 1 << 30)
      assert.ok(ranged.equals(layer.bytes.subarray(123_456, 654_321)))
      const last = await collect(await subject.provider.open(layer.digest, { range: { start: layer.bytes.length - 1, end: layer.bytes.length - 1 } }), 1 << 30)
      assert.deepEqual([...last], [layer.bytes[layer.bytes.length - 1]])
    })

    it('reads a range given a buffer to read into (larger, holding other bytes) byte for byte', async () => {
      const layer = image.layers[0]!
      const into = Buffer.alloc(1 << 20, 0xa5)
      const ranged = await collect(await subject.provider.open(layer.digest, { range: { start: 1000, end: 263_143 }, into }), 1 << 30)
      assert.ok(ranged.equals(layer.bytes.subarray(1000, 263_144)))
      const small = Buffer.alloc(10, 0xa5)
      const whole = await collect(await subject.provider.open(layer.digest, { range: { start: 5, end: 300_004 }, into: small }), 1 << 30)
      assert.ok(whole.equals(layer.bytes.subarray(5, 300_005)), 'a buffer too short is not used')
    })

    it('throws ContentNotFoundError for absent blobs', async () => {
      await assert.rejects(subject.provider.open(`sha256:${'2'.repeat(64)}` as Digest), ContentNotFoundError)
    })

    it('walks index, manifest, config and layers into an inventory with the tag', async () => {
      const inventory = await takeInventory(subject.provider)
      for (const item of image.blobs) assert.equal(inventory.blobs.get(item.digest)?.size, item.bytes.length, item.mediaType)
      assert.equal(inventory.tags.get(tagReference(registry, image.repository, image.tag)), image.target.digest)
      assert.deepEqual(inventory.problems, [])
    })

    it('starts a watch with resync and reports a deleted image as the adapter says it does', async () => {
      const controller = new AbortController()
      const events: ContentEvent[] = []
      const iterator = subject.watcher.watch({ signal: controller.signal })[Symbol.asyncIterator]()
      try {
        events.push((await iterator.next()).value as ContentEvent)
        assert.deepEqual(events[0], { type: 'resync' })
        await subject.deleteImage()
        // A timer that keeps the process alive: a watcher that never yields must fail here, not end the run.
        let timer: NodeJS.Timeout | undefined
        const expired = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no ${subject.deletion} event after deleting the image: ${JSON.stringify(events)}`)), 10_000)
        })
        try {
          for (;;) {
            const event = (await Promise.race([iterator.next(), expired])).value as ContentEvent
            events.push(event)
            if (subject.deletion === 'resync' ? event.type === 'resync' : event.type === 'image-delete' && event.name === image.name) break
          }
        } finally {
          clearTimeout(timer)
        }
        assert.equal(await subject.provider.resolve(image.name), undefined)
      } finally {
        controller.abort()
        await iterator.return?.()
      }
    })
  })
}
