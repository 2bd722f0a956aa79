import Koa from 'koa'
import type { Registry } from 'prom-client'

/** The operator-facing server on --metrics-addr: /metrics (more pages are added by the stats module). */
export function createMetricsApp(components: { registry: Registry }): Koa {
  const app = new Koa()
  app.silent = true
  app.use(async (ctx, next) => {
    if (ctx.path !== '/metrics') return next()
    ctx.type = components.registry.contentType
    ctx.body = await components.registry.metrics()
  })
  return app
}
