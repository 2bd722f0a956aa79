import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export { Registry }

/**
 * Every metric shoal exports, declared here on an injected registry. Names follow Spegel's
 * where the meaning is the same, with the `shoal_` prefix.
 */
export function createMetrics(registry: Registry) {
  const registers = [registry]
  return {
    mirrorRequests: new Counter({
      name: 'shoal_mirror_requests_total',
      help: 'Mirror requests by upstream registry and whether this node or its peers had the content (hit) or not (miss).',
      labelNames: ['registry', 'cache'] as const,
      registers,
    }),
    firstPulls: new Counter({
      name: 'shoal_first_pulls_total',
      help: 'First pulls (content no node held) this node started, by registry, the kind of its first source (upstream or peer: relayed) and outcome (verified, failed, refused: upstream wants credentials, unavailable: no source gave it).',
      labelNames: ['registry', 'source', 'outcome'] as const,
      registers,
    }),
    firstPullBytes: new Counter({
      name: 'shoal_first_pull_bytes_total',
      help: 'Bytes this node read for first pulls, by registry and source (upstream: from the registry itself; peer: relayed by another node).',
      labelNames: ['registry', 'source'] as const,
      registers,
    }),
    resolveDuration: new Histogram({
      name: 'shoal_resolve_duration_seconds',
      help: 'Time to find the holders of a digest or tag.',
      labelNames: ['router'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    advertisedKeys: new Gauge({
      name: 'shoal_advertised_keys',
      help: 'Keys (digests and tags) this node announces in the DHT.',
      registers,
    }),
    dhtDroppedPackets: new Counter({
      name: 'shoal_dht_dropped_packets_total',
      help: 'DHT datagrams dropped before the DHT read them, by reason: unauthenticated (not sealed with the cluster key, stale or replayed), rate-limited (over a source\'s query or announce_peer rate), malformed.',
      labelNames: ['reason'] as const,
      registers,
    }),
    advertisedImages: new Gauge({
      name: 'shoal_advertised_images',
      help: 'Images whose content this node advertises.',
      registers,
    }),
    advertisedImageTags: new Gauge({
      name: 'shoal_advertised_image_tags',
      help: 'Image tags this node advertises.',
      registers,
    }),
    advertisedImageDigests: new Gauge({
      name: 'shoal_advertised_image_digests',
      help: 'Blob digests (manifests, configs, layers) this node advertises.',
      registers,
    }),
    metainfoCache: new Counter({
      name: 'shoal_metainfo_cache_total',
      help: 'Metainfo lookups answered from the cache (hit) or by hashing the blob (miss).',
      labelNames: ['result'] as const,
      registers,
    }),
    metainfoHashSeconds: new Histogram({
      name: 'shoal_metainfo_hash_duration_seconds',
      help: 'Time to hash one blob into its metainfo.',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    metainfoHashedBytes: new Counter({
      name: 'shoal_metainfo_hashed_bytes_total',
      help: 'Bytes read to compute metainfo.',
      registers,
    }),
    peerBytes: new Counter({
      name: 'shoal_peer_bytes_total',
      help: 'Blob bytes moved between nodes, by direction and by how (BitTorrent wire blocks, whole pieces over HTTP, or whole blobs over HTTP).',
      labelNames: ['direction', 'via'] as const,
      registers,
    }),
    swarmPieces: new Counter({
      name: 'shoal_swarm_pieces_total',
      help: 'Pieces received from peers, by SHA-1 verification result.',
      labelNames: ['result'] as const,
      registers,
    }),
    swarmPiecesCheckedOnWorker: new Counter({
      name: 'shoal_swarm_pieces_checked_on_worker_total',
      help: 'Whole pieces fetched over HTTP whose SHA-1 a worker thread checked, by result; a failed one is checked again by the BitTorrent engine, which judges its sender.',
      labelNames: ['result'] as const,
      registers,
    }),
    swarmWireDrops: new Counter({
      name: 'shoal_swarm_wire_drops_total',
      help: 'BitTorrent connections this node dropped, by reason: peer-silent (sent no requested block in time), peer-overrun (asked past its request cap or stopped reading), peer-idle (of no use: no interest either way, interested without requests, or kept choked), wires-full (refused: its swarm or this node had as many connections as it keeps), peer-unauthenticated (did not prove the cluster key).',
      labelNames: ['reason'] as const,
      registers,
    }),
    swarmPeerBans: new Counter({
      name: 'shoal_swarm_peer_bans_total',
      help: 'Peers banned for sending pieces that failed verification.',
      registers,
    }),
    swarmPeersConnected: new Gauge({
      name: 'shoal_swarm_peers_connected',
      help: 'BitTorrent connections open, over all swarms.',
      registers,
    }),
    pieceMemoryBytes: new Gauge({
      name: 'shoal_piece_memory_bytes',
      help: 'Bytes of whole-piece buffers in use (fetched from peers, read for peers and clients); past --piece-memory, downloads fetch one piece at a time.',
      registers,
    }),
    swarmsActive: new Gauge({
      name: 'shoal_swarms_active',
      help: 'Blobs this node is in a swarm for, by role.',
      labelNames: ['role'] as const,
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: 'shoal_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, until the last byte of the body.',
      labelNames: ['handler', 'method', 'code'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
      registers,
    }),
    httpResponseSize: new Histogram({
      name: 'shoal_http_response_size_bytes',
      help: 'Bytes sent in HTTP response bodies.',
      labelNames: ['handler', 'method', 'code'] as const,
      buckets: [100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10],
      registers,
    }),
    httpRequestsInflight: new Gauge({
      name: 'shoal_http_requests_inflight',
      help: 'HTTP requests being answered.',
      labelNames: ['handler'] as const,
      registers,
    }),
  }
}

export type Metrics = ReturnType<typeof createMetrics>

/** Label values known in advance are exported as 0 from the start, so dashboards and rate() see them. */
function initialiseLabels(metrics: Metrics): void {
  for (const result of ['hit', 'miss']) metrics.metainfoCache.inc({ result }, 0)
  for (const result of ['verified', 'failed']) {
    metrics.swarmPieces.inc({ result }, 0)
    metrics.swarmPiecesCheckedOnWorker.inc({ result }, 0)
  }
  for (const direction of ['up', 'down']) for (const via of ['wire', 'http-pieces', 'http']) metrics.peerBytes.inc({ direction, via }, 0)
  for (const role of ['download', 'seed']) metrics.swarmsActive.set({ role }, 0)
}

/** A registry with Node process metrics (CPU, memory, event loop lag, GC) and shoal's own. */
export function createMetricsRegistry(): { registry: Registry; metrics: Metrics } {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const metrics = createMetrics(registry)
  initialiseLabels(metrics)
  return { registry, metrics }
}
