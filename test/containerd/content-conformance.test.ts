import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe } from 'node:test'
import { ContainerdContentProvider } from '../../src/containerd/content-provider.js'
import { ContainerdEventWatcher } from '../../src/containerd/watcher.js'
import { configureMirrors } from '../../src/containerd/mirror-config.js'
import { parseMirroredRegistry } from '../../src/oci/registry-url.js'
import { contentProviderConformance } from '../support/content-conformance.js'
import { startContainerd } from '../support/containerd.js'
import { rootTestsUnavailable } from '../support/environment.js'
import { freePort } from '../support/ports.js'
import { silentLogger } from '../support/registry-app.js'
import { pushImage, startUpstreamRegistry } from '../support/upstream.js'

const skip = rootTestsUnavailable(['containerd', 'docker-registry'])

if (skip) {
  describe('ContentProvider conformance: containerd', { skip }, () => {})
} else {
  const port = await freePort()
  const grpcPort = await freePort()
  contentProviderConformance('containerd 1.6 (CRI pull, files and gRPC)', `127.0.0.1:${port}`, async ({ image }) => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-ctrd-conf-'))
    const upstream = await startUpstreamRegistry(join(dir, 'upstream'), { host: '127.0.0.1', port })
    await pushImage(upstream.url, image)
    const containerd = await startContainerd(join(dir, 'node'))
    // Direct to upstream: this suite is about reading what containerd holds.
    await configureMirrors({ configPath: containerd.registryConfigPath, registries: [parseMirroredRegistry(upstream.url)], mirrorTargets: [upstream.url], resolveTags: true, prependExisting: false })
    await containerd.cri.pullImage(image.name, { timeoutMs: 60_000 })
    return {
      provider: new ContainerdContentProvider({ client: containerd.client }, { contentPath: containerd.contentPath }),
      watcher: new ContainerdEventWatcher({ client: containerd.client, logger: silentLogger }),
      deleteImage: () => containerd.cri.removeImage(image.name),
      deletion: 'image-delete',
      async cleanup() {
        await containerd.stop()
        await upstream.stop()
        await rm(dir, { recursive: true, force: true })
      },
    }
  })

  contentProviderConformance('containerd 1.6 over gRPC Content/Read only', `127.0.0.1:${grpcPort}`, async ({ image }) => {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-ctrd-grpc-'))
    const upstream = await startUpstreamRegistry(join(dir, 'upstream'), { host: '127.0.0.1', port: grpcPort })
    await pushImage(upstream.url, image)
    const containerd = await startContainerd(join(dir, 'node'))
    await configureMirrors({ configPath: containerd.registryConfigPath, registries: [parseMirroredRegistry(upstream.url)], mirrorTargets: [upstream.url], resolveTags: true, prependExisting: false })
    await containerd.cri.pullImage(image.name, { timeoutMs: 60_000 })
    return {
      // A content path that does not exist forces the gRPC fallback.
      provider: new ContainerdContentProvider({ client: containerd.client }, { contentPath: join(dir, 'not-mounted') }),
      watcher: new ContainerdEventWatcher({ client: containerd.client, logger: silentLogger }),
      deleteImage: () => containerd.cri.removeImage(image.name),
      deletion: 'image-delete',
      async cleanup() {
        await containerd.stop()
        await upstream.stop()
        await rm(dir, { recursive: true, force: true })
      },
    }
  })
}
