import { once } from 'node:events'
import type { Logger } from 'pino'
import type { RegistryConfig } from '../config/commands.js'
import { ContainerdClient } from '../containerd/client.js'
import { ContainerdContentProvider } from '../containerd/content-provider.js'
import { CriClient } from '../containerd/cri.js'
import { ContainerdEventWatcher } from '../containerd/watcher.js'
import { OciLayoutContentProvider } from '../content/oci-layout.js'
import type { ContentProvider, ContentWatcher } from '../content/provider.js'
import { HttpServer } from '../net/http-server.js'
import { componentLogger } from '../observe/logger.js'
import { createMetricsApp } from '../observe/metrics-app.js'
import { createMetricsRegistry } from '../observe/metrics.js'
import { createRegistryApp } from '../registry/app.js'
import { checkContainerd } from './containerd-check.js'

interface ContentSource {
  content: ContentProvider
  watcher: ContentWatcher
  /** Resolves once the source can serve; throws if it never will (misconfigured containerd). */
  ready(signal: AbortSignal): Promise<void>
  close(): void
}

/** `shoal registry`: the node daemon. */
export async function runRegistry(config: RegistryConfig, logger: Logger, signal: AbortSignal): Promise<void> {
  const { registry: promRegistry, metrics } = createMetricsRegistry()
  const source = config.contentDir ? layoutSource(config.contentDir) : containerdSource(config, componentLogger(logger, 'containerd'))
  let ready = false
  const registryApp = createRegistryApp(
    { content: source.content, logger: componentLogger(logger, 'registry'), metrics, ready: () => ready },
    { resolveTags: config.resolveTags })
  const registryServer = new HttpServer({ logger }, { address: config.registryAddr, listener: registryApp.callback() })
  const metricsServer = new HttpServer({ logger }, { address: config.metricsAddr, listener: createMetricsApp({ registry: promRegistry }).callback() })
  try {
    const registryAddress = await registryServer.start()
    const metricsAddress = await metricsServer.start()
    logger.info({ registry: registryAddress, metrics: metricsAddress }, 'listening')
    await source.ready(signal)
    ready = true
    logger.info('ready')
    if (!signal.aborted) await once(signal, 'abort')
  } finally {
    await registryServer.stop()
    await metricsServer.stop()
    source.close()
  }
}

function layoutSource(directory: string): ContentSource {
  const layout = new OciLayoutContentProvider(directory)
  return { content: layout, watcher: layout, ready: async () => {}, close: () => {} }
}

function containerdSource(config: RegistryConfig, logger: Logger): ContentSource {
  const client = new ContainerdClient({ socket: config.containerdSock, namespace: config.containerdNamespace })
  const cri = new CriClient(config.containerdSock)
  return {
    content: new ContainerdContentProvider({ client }, { contentPath: config.containerdContentPath }),
    watcher: new ContainerdEventWatcher({ client, logger }),
    async ready(signal) {
      if (!config.verifyContainerdConfig) return
      await checkContainerd(cri, { configFile: config.containerdConfigFile, registryConfigPath: config.containerdRegistryConfigPath }, logger, signal)
    },
    close() {
      client.close()
      cri.close()
    },
  }
}
