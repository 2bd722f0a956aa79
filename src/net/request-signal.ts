import type { Context } from 'koa'

/** Aborts when the client goes away, so work on its behalf stops. */
export function requestSignal(ctx: Context): AbortSignal {
  const controller = new AbortController()
  ctx.res.once('close', () => controller.abort(new Error('client closed the connection')))
  return controller.signal
}
