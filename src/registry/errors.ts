import type { Context, Next } from 'koa'
import type { Logger } from 'pino'
import { API_VERSION, API_VERSION_HEADER, errorBody, OciError } from '../oci/errors.js'
import { describeError } from '../util/errors.js'

/**
 * Renders every error as an OCI error body. Client errors (4xx) are expected and logged at
 * debug; anything else is logged here, once. After headers are sent the only honest answer is
 * to cut the connection so the client sees a short body and retries.
 */
export function ociErrors(logger: Logger) {
  return async function ociErrorMiddleware(ctx: Context, next: Next): Promise<void> {
    try {
      await next()
    } catch (err) {
      if (ctx.headerSent) {
        logger.warn({ err, path: ctx.path }, 'response aborted after headers were sent')
        ctx.req.socket.destroy()
        return
      }
      const oci = err instanceof OciError ? err : undefined
      if (!oci) logger.error({ err, method: ctx.method, path: ctx.path }, 'request failed')
      else if (oci.status >= 500) logger.warn({ code: oci.code, msg: oci.message, path: ctx.path }, 'request failed')
      else logger.debug({ code: oci.code, msg: oci.message, path: ctx.path }, 'request refused')
      ctx.status = oci?.status ?? 500
      ctx.set(API_VERSION_HEADER, API_VERSION)
      for (const [name, value] of Object.entries(oci?.headers ?? {})) ctx.set(name, value)
      ctx.body = oci ? errorBody(oci.code, describeError(oci), oci.detail) : errorBody('UNKNOWN', 'internal error; see the shoal log')
    }
  }
}
