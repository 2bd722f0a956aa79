import Koa, { type Context } from 'koa'
import type { Registry } from 'prom-client'
import { requestSignal } from '../net/request-signal.js'
import { DEBUG_PAGE_HTML } from './debug-page.js'
import { MeasureBusyError, MeasureInputError, type Measurer } from './measure.js'
import { buildStats, type StatsSources } from './stats.js'

const MAX_MEASURE_BODY = 4096

export interface MetricsAppComponents {
  registry: Registry
  stats?: StatsSources
  measurer?: Measurer
}

/** The operator-facing server on --metrics-addr: /metrics, /stats, /debug. */
export function createMetricsApp(components: MetricsAppComponents): Koa {
  const app = new Koa()
  app.silent = true
  app.use(async (ctx, next) => {
    if (ctx.path === '/debug/measure' && components.measurer) {
      await measure(ctx, components.measurer)
      return
    }
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
    } else if (ctx.path === '/debug' && components.stats) {
      ctx.type = 'text/html; charset=utf-8'
      ctx.set('Cache-Control', 'no-store')
      ctx.body = DEBUG_PAGE_HTML
    } else {
      await next()
    }
  })
  return app
}

async function measure(ctx: Context, measurer: Measurer): Promise<void> {
  if (ctx.method !== 'POST') {
    ctx.status = 405
    ctx.set('Allow', 'POST')
    return
  }
  try {
    const reference = await readReference(ctx)
    ctx.body = await measurer.measure(reference, requestSignal(ctx))
  } catch (err) {
    ctx.status = err instanceof MeasureInputError ? 400 : err instanceof MeasureBusyError ? 409 : 502
    ctx.body = { error: (err as Error).message }
  }
}

async function readReference(ctx: Context): Promise<string> {
  const chunks: Buffer[] = []
  let length = 0
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    length += chunk.length
    if (length > MAX_MEASURE_BODY) throw new MeasureInputError(`request body over ${MAX_MEASURE_BODY} bytes`)
    chunks.push(chunk)
  }
  let body: unknown
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new MeasureInputError('the body must be JSON: {"reference": "registry/repository:tag"}')
  }
  const reference = (body as { reference?: unknown } | null)?.reference
  if (typeof reference !== 'string') throw new MeasureInputError('the body must be JSON: {"reference": "registry/repository:tag"}')
  return reference
}
