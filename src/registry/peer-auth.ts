import type { Context, Next } from 'koa'
import type { ClusterKey } from '../net/cluster-key.js'
import type { ReplayGuard } from '../net/replay-guard.js'
import { UnauthorizedError } from '../oci/errors.js'
import { PEER_API_PREFIX, PEER_REQUEST_HEADER } from '../protocol/peer-api.js'
import { AUTH_HEADER, signAnswer, verifyRequest } from '../protocol/peer-auth.js'

/**
 * With a cluster key, a request from another node (marked as such, or to shoal's peer API) must prove
 * the key, else 401; its 2xx answer is signed so the asking node knows who answered.
 * Requests from the local containerd are not marked and pass untouched.
 */
export function peerAuthentication(key: ClusterKey | undefined, replay: ReplayGuard) {
  return async function peerAuthenticationMiddleware(ctx: Context, next: Next): Promise<void> {
    const fromPeer = ctx.get(PEER_REQUEST_HEADER) !== '' || ctx.path.startsWith(PEER_API_PREFIX)
    if (!key || !fromPeer) return next()
    const verdict = verifyRequest(key, replay, ctx.method, ctx.url, ctx.get(AUTH_HEADER) || undefined)
    if ('problem' in verdict) throw new UnauthorizedError(verdict.problem)
    await next()
    if (ctx.status >= 200 && ctx.status < 300) {
      ctx.set(AUTH_HEADER, signAnswer(key, verdict.nonce, ctx.status, (name) => headerText(ctx.response.get(name))))
    }
  }
}

/** A response header as it goes on the wire (Content-Length is kept as a number until then). */
function headerText(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined
  return Array.isArray(value) ? value.join(', ') : String(value)
}
