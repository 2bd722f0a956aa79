import { once } from 'node:events'
import type { Logger } from 'pino'
import type { RegistryConfig } from '../config/commands.js'
import { daemonNode } from '../node/daemon.js'
import { OPEN_SWARM_WARNING } from '../node/node.js'
import { InvalidValueError } from '../config/values.js'
import { ClusterKey } from '../net/cluster-key.js'

export function validateRegistryConfig(config: RegistryConfig): void {
  if (config.bootstrapKind === 'dns' && !config.dnsBootstrapDomain) {
    throw new InvalidValueError('--bootstrap-kind dns needs --dns-bootstrap-domain (the headless Service of the DaemonSet)')
  }
}

/** `shoal registry`: runs a node until SIGTERM/SIGINT. */
export async function runRegistry(config: RegistryConfig, logger: Logger, signal: AbortSignal, version: string): Promise<void> {
  validateRegistryConfig(config)
  if (config.bootstrapKind === 'static' && config.staticBootstrapPeers.length === 0) {
    logger.warn('no bootstrap peers: this node only finds nodes that contact it (--static-bootstrap-peers or --bootstrap-kind dns)')
  }
  const clusterKey = config.clusterKeyFile ? await ClusterKey.load(config.clusterKeyFile) : undefined
  if (clusterKey) logger.info({ keys: clusterKey.fingerprints }, 'cluster key loaded: only nodes that prove it are believed')
  else logger.warn(OPEN_SWARM_WARNING)
  const node = daemonNode(config, logger, version, clusterKey)
  try {
    await node.start({ signal })
    logger.info('started')
    if (!signal.aborted) await once(signal, 'abort')
  } finally {
    await node.stop()
  }
}
