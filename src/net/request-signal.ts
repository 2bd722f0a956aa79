import type { Context } from 'koa'

/** Aborts when the response closes (the client went away, or it was sent), so work on its behalf stops; one per request. */
export function requestSignal(ctx: Context): AbortSignal {
  const known = signals.get(ctx.res)
  if (known) return known
  const controller = new AbortController()
  ctx.res.once('close', () => controller.abort(new Error('client closed the connection')))
  signals.set(ctx.res, controller.signal)
  return controller.signal
}

const signals = new WeakMap<object, AbortSignal>()

/**
 * While a response body is sent: a client that takes no bytes for `timeoutMs` is disconnected
 * (the server destroys a socket whose timeout nobody handles). Waiting for the answer before
 * that is bounded by the mirror, and an idle connection after it by the keep-alive timeout.
 */
export function limitBodyStall(ctx: Context, timeoutMs: number): void {
  const socket = ctx.req.socket
  socket.setTimeout(timeoutMs)
  ctx.res.once('finish', () => socket.setTimeout(0))
}
