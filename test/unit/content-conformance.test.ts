import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { OciLayoutContentProvider } from '../../src/content/oci-layout.js'
import { contentProviderConformance } from '../support/content-conformance.js'
import { writeOciLayout } from '../support/images.js'

contentProviderConformance('in-memory fake', 'registry.test', async ({ image }) => {
  const provider = new MemoryContentProvider()
  for (const item of image.blobs) provider.addBlob(item.bytes)
  provider.setImage(image.name, { digest: image.target.digest, size: image.target.bytes.length, mediaType: image.target.mediaType })
  return { provider, watcher: provider, deleteImage: async () => provider.deleteImage(image.name), deletion: 'image-delete', cleanup: async () => {} }
})

contentProviderConformance('OCI layout directory', 'registry.test', async ({ image }) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-layout-'))
  await writeOciLayout(dir, [image])
  const provider = new OciLayoutContentProvider(dir, { pollIntervalMs: 50 })
  return {
    provider,
    watcher: provider,
    async deleteImage() {
      const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: unknown[] }
      index.manifests = []
      await writeFile(join(dir, 'index.json'), JSON.stringify(index))
    },
    deletion: 'resync',
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
})
