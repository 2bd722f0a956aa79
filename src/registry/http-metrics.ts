import type { Context, Next } from 'koa'
import type { Metrics } from '../observe/metrics.js'

/** Classifies a path into a bounded `handler` label. */
export function handlerLabel(path: string): string {
  if (path === '/v2' || path === '/v2/') return 'base'
  if (/^\/v2\/.+\/manifests\/[^/]+$/.test(path)) return 'manifests'
  if (/^\/v2\/.+\/blobs\/[^/]+$/.test(path)) return 'blobs'
  if (path === '/readyz' || path === '/livez') return 'probe'
  return 'other'
}

/** Request duration (to the end of the body), response size and in-flight requests. */
export function httpMetrics(metrics: Metrics) {
  return async function httpMetricsMiddleware(ctx: Context, next: Next): Promise<void> {
    const handler = handlerLabel(ctx.path)
    const started = process.hrtime.bigint()
    metrics.httpRequestsInflight.inc({ handler })
    ctx.res.once('close', () => {
      metrics.httpRequestsInflight.dec({ handler })
      const labels = { handler, method: ctx.method, code: String(ctx.res.statusCode) }
      metrics.httpRequestDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9)
      metrics.httpResponseSize.observe(labels, bodyBytes(ctx))
    })
    await next()
  }
}

function bodyBytes(ctx: Context): number {
  const length = Number(ctx.res.getHeader('content-length') ?? 0)
  return ctx.method === 'HEAD' || !Number.isFinite(length) ? 0 : length
}
