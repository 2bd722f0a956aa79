import { networkInterfaces } from 'node:os'
import type { Logger } from 'pino'
import type { RegistryConfig } from '../config/commands.js'
import type { DialAddress } from '../net/address.js'
import { componentLogger } from '../observe/logger.js'
import { DnsBootstrap, StaticBootstrap, type Bootstrap } from '../routing/bootstrap.js'
import { DhtRouter } from '../routing/dht.js'
import { WebTorrentSwarm } from '../swarm/webtorrent-swarm.js'
import { contentSource } from './content-source.js'
import type { ClusterKey } from '../net/cluster-key.js'
import { ShoalNode } from './node.js'

/** The node `shoal registry` runs: containerd (or a layout directory), the DHT and webtorrent. */
export function daemonNode(config: RegistryConfig, logger: Logger, version: string, clusterKey?: ClusterKey): ShoalNode {
  const identity = nodeIdentity(config)
  return new ShoalNode({
    source: contentSource(config, componentLogger(logger, 'containerd')),
    router: ({ metrics, registryPort }) => new DhtRouter({ bootstrap: bootstrapOf(config), logger: componentLogger(logger, 'dht'), metrics },
      { listen: config.p2pAddr, announcePort: registryPort, clusterKey }),
    swarm: (components) => new WebTorrentSwarm(components, { dataDir: config.dataDir, wirePort: config.p2pAddr.port, identity, uploadLimit: config.uploadLimit, peerIdleMs: config.peerIdleTimeout, maxWiresPerSwarm: config.maxWiresPerSwarm, maxWires: config.maxWires, lingerMs: config.downloadLinger, clusterKey, httpPieces: config.swarmHttpPieces, verifyThreads: config.verifyThreads }),
  }, {
    version, registryAddr: config.registryAddr, metricsAddr: config.metricsAddr, dataDir: config.dataDir, advertisedHost: identity.host,
    resolveTimeoutMs: config.mirrorResolveTimeout, stallTimeoutMs: config.stallTimeout, swarmMinSize: config.swarmMinSize, pieceMemory: config.pieceMemory, resolveTags: config.resolveTags,
    registryFilters: config.registryFilters, singleSource: config.singleSource, mirroredRegistries: config.mirroredRegistries.map((registry) => registry.host),
    clientTimeoutMs: config.clientTimeout, maxBlobStreams: config.maxBlobStreams, clusterKey,
    upstreamFetch: config.upstreamFetch, registryConfigPath: config.containerdRegistryConfigPath, maxUpstreamFetches: config.maxUpstreamFetches, downloadLingerMs: config.downloadLinger, settings: { ...config, registryFilters: config.registryFilters.map(String) },
  }, logger)
}

function bootstrapOf(config: RegistryConfig): Bootstrap {
  if (config.bootstrapKind === 'dns') return new DnsBootstrap(config.dnsBootstrapDomain, config.p2pAddr.port)
  return new StaticBootstrap(config.staticBootstrapPeers)
}

/** The address peers know this node by: the p2p host if one is set, else its first external IPv4. */
function nodeIdentity(config: RegistryConfig): DialAddress {
  const host = config.p2pAddr.host && config.p2pAddr.host !== '0.0.0.0' ? config.p2pAddr.host
    : Object.values(networkInterfaces()).flat().find((address) => address && address.family === 'IPv4' && !address.internal)?.address ?? '127.0.0.1'
  return { host, port: config.p2pAddr.port }
}
