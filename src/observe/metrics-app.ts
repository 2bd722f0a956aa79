import Koa from 'koa'
import type { Registry } from 'prom-client'
import { buildStats, type StatsSources } from './stats.js'

/** The operator-facing server on --metrics-addr: /metrics and /stats. */
export function createMetricsApp(components: { registry: Registry; stats?: StatsSources }): Koa {
  const app = new Koa()
  app.silent = true
  app.use(async (ctx, next) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405
      return
    }
    if (ctx.path === '/metrics') {
      ctx.type = components.registry.contentType
      ctx.body = await components.registry.metrics()
    } else if (ctx.path === '/stats' && components.stats) {
      ctx.set('Cache-Control', 'no-store')
      ctx.body = buildStats(components.stats)
    } else {
      await next()
    }
  })
  return app
}
