import { DEFAULT_CONTAINERD_NAMESPACE, DEFAULT_CONTAINERD_SOCK } from '../containerd/client.js'
import { DEFAULT_CONTAINERD_CONTENT_PATH } from '../containerd/content-provider.js'
import { DEFAULT_CONTAINERD_CONFIG } from '../containerd/settings.js'
import type { HostPort } from '../net/address.js'
import { DEFAULT_CLIENT_TIMEOUT_MS } from '../net/http-server.js'
import { DEFAULT_RESOLVE_TIMEOUT_MS, DEFAULT_STALL_TIMEOUT_MS } from '../mirror/mirror.js'
import { DEFAULT_MAX_BLOB_STREAMS } from '../registry/stream-slots.js'
import { DEFAULT_MAX_UPSTREAM_FETCHES } from '../upstream/upstream-source.js'
import { DEFAULT_LINGER_MS } from '../swarm/webtorrent-options.js'
import { DEFAULT_PEER_IDLE_MS } from '../swarm/wire-guard.js'
import { DEFAULT_MAX_WIRES, DEFAULT_MAX_WIRES_PER_SWARM } from '../swarm/peer-wires.js'
import { DEFAULT_VERIFY_THREADS } from '../swarm/piece-verifier.js'
import { DEFAULT_PIECE_MEMORY } from '../util/buffer-pool.js'
import type { LogLevel } from '../observe/logger.js'
import { opt, type OptionSpec, type OptionValues } from './options.js'
import { parseDialAddress, type DialAddress } from '../net/address.js'
import { formatDuration, InvalidValueError, parseAddress, parseByteSize, parseDuration, parseLogLevel, parseOriginList, parseRegistryList, splitList } from './values.js'

export const DEFAULT_REGISTRY_CONFIG_PATH = '/etc/containerd/certs.d'
export const DEFAULT_DATA_DIR = '/var/lib/shoal'

const address = (description: string, defaultValue: string): OptionSpec<HostPort> =>
  ({ description, default: parseAddress(defaultValue), defaultText: defaultValue, argument: '<addr>', parse: parseAddress })

const duration = (description: string, defaultMs: number): OptionSpec<number> =>
  ({ description, default: defaultMs, defaultText: formatDuration(defaultMs), argument: '<duration>', parse: parseDuration })

const size = (description: string, defaultValue: string): OptionSpec<number> =>
  ({ description, default: parseByteSize(defaultValue), defaultText: defaultValue, argument: '<bytes>', parse: parseByteSize })

function parseDialList(raw: string): DialAddress[] {
  return splitList(raw).map((item) => {
    try {
      return parseDialAddress(item)
    } catch (err) {
      throw new InvalidValueError((err as Error).message)
    }
  })
}

function parseRegexList(raw: string): RegExp[] {
  return splitList(raw).map((source) => {
    try {
      return new RegExp(source)
    } catch (err) {
      throw new InvalidValueError(`not a regular expression: ${(err as Error).message}`)
    }
  })
}

function parseBootstrapKind(raw: string): 'static' | 'dns' {
  if (raw !== 'static' && raw !== 'dns') throw new InvalidValueError('bootstrap kind is static or dns')
  return raw
}

/** 32 MiB: below it one holder over HTTP is as fast as the swarm (see docs/benchmarks.md). */
export const DEFAULT_SWARM_MIN_SIZE = '32MiB'

const logLevel: OptionSpec<LogLevel> = {
  description: 'trace, debug, info, warn, error, fatal or silent',
  default: 'info',
  argument: '<level>',
  parse: parseLogLevel,
}

const containerd = {
  containerdSock: opt.string('containerd gRPC socket', DEFAULT_CONTAINERD_SOCK, '<path>'),
  containerdConfigFile: opt.string("containerd's config.toml, read to check its settings when CRI status does not report them (containerd 2.x)", DEFAULT_CONTAINERD_CONFIG, '<path>'),
  verifyContainerdConfig: opt.boolean('fail unless containerd has a registry config_path and keeps unpacked layers', true),
}

const registryConfigPath = {
  containerdRegistryConfigPath: opt.string("containerd's registry config path, where hosts.toml files live", DEFAULT_REGISTRY_CONFIG_PATH, '<path>'),
}

export const CONFIGURATION_OPTIONS = {
  ...registryConfigPath,
  mirroredRegistries: opt.list('registries to mirror, as URLs (https://docker.io, http://10.0.0.9:5000); none mirrors all through _default', '<url>', parseRegistryList),
  mirrorTargets: opt.list("URLs of this node's shoal that containerd tries first, in order", '<url>', parseOriginList),
  resolveTags: opt.boolean('let containerd resolve tags through shoal (capability "resolve")', true),
  prependExisting: opt.boolean('keep the [host.*] entries of existing hosts.toml files after shoal', false),
  ...containerd,
  logLevel,
}
export type ConfigurationConfig = OptionValues<typeof CONFIGURATION_OPTIONS>

const optionalAddress = (description: string): OptionSpec<HostPort | undefined> =>
  ({ description, default: undefined, defaultText: 'none', argument: '<addr>', parse: parseAddress })

export const CLEANUP_OPTIONS = {
  ...registryConfigPath,
  probeAddr: optionalAddress("after restoring, answer GET /readyz here until stopped (the chart's post-delete DaemonSet)"),
  logLevel,
}
export type CleanupConfig = OptionValues<typeof CLEANUP_OPTIONS>

export const REGISTRY_OPTIONS = {
  ...registryConfigPath,
  containerdNamespace: opt.string('containerd namespace whose images are served', DEFAULT_CONTAINERD_NAMESPACE, '<name>'),
  containerdContentPath: opt.string("containerd's content store on disk, read-only", DEFAULT_CONTAINERD_CONTENT_PATH, '<path>'),
  ...containerd,
  contentDir: opt.string('serve an OCI image layout directory instead of containerd (demo and tests)', '', '<path>'),
  resolveTags: opt.boolean('resolve tags through the image store', true),
  registryAddr: address('registry API: the local containerd mirror and the peers', ':5000'),
  metricsAddr: address('metrics, /stats and the debug page', ':9090'),
  dataDir: opt.string('state kept across restarts (metainfo cache) and partial downloads', DEFAULT_DATA_DIR, '<path>'),
  p2pAddr: address('BitTorrent wire (TCP, all interfaces) and DHT (UDP, this address)', ':5001'),
  bootstrapKind: { description: 'how the DHT finds other nodes: static or dns', default: 'static' as 'static' | 'dns', argument: '<kind>', parse: parseBootstrapKind },
  dnsBootstrapDomain: opt.string('with --bootstrap-kind dns: a name whose A records are the nodes (headless Service)', '', '<name>'),
  staticBootstrapPeers: { description: 'with --bootstrap-kind static: DHT addresses (host:port) of other nodes', default: [] as DialAddress[], argument: '<addr>', list: true, parse: parseDialList },
  mirrorResolveTimeout: duration('longest wait for the DHT to name a holder before answering 404', DEFAULT_RESOLVE_TIMEOUT_MS),
  swarmMinSize: size('blobs at least this large are fetched through the swarm, smaller ones from one holder', DEFAULT_SWARM_MIN_SIZE),
  stallTimeout: duration('a source that delivers nothing for this long is dropped, and a stalled response cut', DEFAULT_STALL_TIMEOUT_MS),
  verifyThreads: { description: 'threads that check the SHA-1 of whole pieces fetched over HTTP, off the main thread (0: the main thread checks them)', default: DEFAULT_VERIFY_THREADS, defaultText: `cores − 1 up to 4, none below 4 cores (here ${DEFAULT_VERIFY_THREADS})`, argument: '<count>', parse: parseThreadCount },
  pieceMemory: size('whole pieces held in memory at once over all transfers (fetched from peers, read for peers and clients); past it, each download fetches one piece at a time until some are given back', `${DEFAULT_PIECE_MEMORY / 2 ** 20}MiB`),
  swarmHttpPieces: opt.boolean('swarm transfers between nodes that both offer it take whole pieces from the peer\'s registry API over HTTP (each still SHA-1 checked); false: 16 KiB blocks over the BitTorrent wire only', true),
  singleSource: opt.boolean('stream every blob from one holder over HTTP, never through the swarm (how Spegel does it; for comparison)', false),
  uploadLimit: size('upload limit of this node in bytes per second, over all peers (0: none)', '0'),
  mirroredRegistries: opt.list('registries containerd mirrors through this node (URLs); they name the `registry` label of metrics, any other is counted as "other", and first pulls go only to them (none: to any `?ns=`)', '<url>', parseRegistryList),
  clientTimeout: duration('HTTP: longest wait for request headers (then 408), on an idle connection, or for a client to read more of a body (never less than --stall-timeout + 1s)', DEFAULT_CLIENT_TIMEOUT_MS),
  maxBlobStreams: { description: 'blob bodies served at once; more wait up to 5s for one to end, then get 503 (containerd goes upstream, peers ask another holder); one client address may hold at most 16', default: DEFAULT_MAX_BLOB_STREAMS, defaultText: String(DEFAULT_MAX_BLOB_STREAMS), argument: '<count>', parse: parseCount },
  peerIdleTimeout: duration('a BitTorrent connection of no use for this long is closed (no interest either way, a peer that is interested but asks nothing, or one that keeps us choked)', DEFAULT_PEER_IDLE_MS),
  maxWiresPerSwarm: { description: "BitTorrent connections one blob's swarm keeps at once; more are refused", default: DEFAULT_MAX_WIRES_PER_SWARM, defaultText: String(DEFAULT_MAX_WIRES_PER_SWARM), argument: '<count>', parse: parseCount },
  maxWires: { description: 'BitTorrent connections this node keeps at once over all blobs; more are refused', default: DEFAULT_MAX_WIRES, defaultText: String(DEFAULT_MAX_WIRES), argument: '<count>', parse: parseCount },
  upstreamFetch: opt.boolean('content no node holds is pulled from upstream once for the cluster (anonymously, through the relay tree) and relayed to every node that asks; false: answer 404 so each containerd goes upstream itself', true),
  maxUpstreamFetches: { description: 'bodies this node reads from upstream at once for first pulls; past it, the next node in the relay tree or containerd itself goes upstream', default: DEFAULT_MAX_UPSTREAM_FETCHES, defaultText: String(DEFAULT_MAX_UPSTREAM_FETCHES), argument: '<count>', parse: parseCount },
  downloadLinger: duration('a finished download (or first pull) the content store has not taken keeps seeding from its file this long, then is removed', DEFAULT_LINGER_MS),
  clusterKeyFile: opt.string('file with the cluster key (one key a line, 32+ characters; all lines are used, so nodes sharing any key talk): every DHT packet, BitTorrent connection and HTTP request between nodes must prove it. None: an open swarm that believes anyone who can reach it', '', '<path>'),
  registryFilters: { description: 'regular expressions over image names (registry/repository:tag): matching images are not advertised and their tags not resolved',
    default: [] as RegExp[], argument: '<regex>', list: true, parse: parseRegexList },
  logLevel,
}
export type RegistryConfig = OptionValues<typeof REGISTRY_OPTIONS>

export const CLEANUP_WAIT_OPTIONS = {
  dnsDomain: opt.string('a name whose A records are the cleanup pods (headless Service)', '', '<name>'),
  probePort: { ...opt.string('port of their --probe-addr', '5002', '<port>'), parse: parsePort },
  timeout: duration('give up after this long', 5 * 60_000),
  logLevel,
}
export type CleanupWaitConfig = OptionValues<typeof CLEANUP_WAIT_OPTIONS>

function parseThreadCount(raw: string): number {
  const count = Number(raw)
  if (!/^\d+$/.test(raw.trim()) || count > 64) throw new InvalidValueError('a whole number from 0 to 64')
  return count
}

function parseCount(raw: string): number {
  const count = Number(raw)
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(count) || count < 1) throw new InvalidValueError('a whole number of at least 1')
  return count
}

function parsePort(raw: string): string {
  const port = Number(raw)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidValueError('a port is an integer from 1 to 65535')
  return String(port)
}

export const STATUS_OPTIONS = {
  addr: { ...opt.string("a node's metrics address (--metrics-addr), e.g. after kubectl port-forward pod/shoal-xxxxx 9090", '127.0.0.1:9090', '<host:port>'), env: 'SHOAL_STATUS_ADDR' },
  json: { ...opt.boolean('print the /stats document as JSON', false), env: null },
  timeout: { ...duration('how long to wait for the node to answer', 5_000), env: null },
}
export type StatusConfig = OptionValues<typeof STATUS_OPTIONS>
