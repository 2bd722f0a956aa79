import type { Logger } from 'pino'
import type { RegistryConfig } from '../config/commands.js'
import { ContainerdClient } from '../containerd/client.js'
import { ContainerdContentProvider } from '../containerd/content-provider.js'
import { CriClient } from '../containerd/cri.js'
import { ContainerdEventWatcher } from '../containerd/watcher.js'
import { checkBlobsReadable } from '../content/blob-file.js'
import { OciLayoutContentProvider } from '../content/oci-layout.js'
import type { ContentProvider, ContentWatcher } from '../content/provider.js'
import { checkContainerd } from '../containerd/check.js'

/** Where a node's content comes from: containerd, or an OCI layout directory (demo, tests). */
export interface ContentSource {
  content: ContentProvider
  watcher: ContentWatcher
  /** Resolves once the source can serve; throws if it never will (misconfigured containerd). */
  ready(options?: { signal?: AbortSignal }): Promise<void>
  /** Resolves when the source answers now and its blob files can be read (health check); throws otherwise. */
  ping(options?: { signal?: AbortSignal }): Promise<void>
  close(): void
}

export function contentSource(config: RegistryConfig, logger: Logger): ContentSource {
  if (config.contentDir) {
    const layout = new OciLayoutContentProvider(config.contentDir)
    return { content: layout, watcher: layout, ready: async () => {}, ping: () => checkBlobsReadable(layout.root), close: () => {} }
  }
  const client = new ContainerdClient({ socket: config.containerdSock, namespace: config.containerdNamespace })
  const cri = new CriClient(config.containerdSock)
  return {
    content: new ContainerdContentProvider({ client }, { contentPath: config.containerdContentPath }),
    watcher: new ContainerdEventWatcher({ client, logger }),
    async ready(options) {
      if (!config.verifyContainerdConfig) return
      await checkContainerd(cri, { configFile: config.containerdConfigFile, registryConfigPath: config.containerdRegistryConfigPath }, logger, options)
    },
    async ping(options) {
      await client.version(options)
      await checkBlobsReadable(config.containerdContentPath)
    },
    close() {
      client.close()
      cri.close()
    },
  }
}
