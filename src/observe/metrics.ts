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
    resolveDuration: new Histogram({
      name: 'shoal_resolve_duration_seconds',
      help: 'Time to find the holders of a digest or tag.',
      labelNames: ['router'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
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

/** A registry with Node process metrics (CPU, memory, event loop lag, GC) and shoal's own. */
export function createMetricsRegistry(): { registry: Registry; metrics: Metrics } {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  return { registry, metrics: createMetrics(registry) }
}
