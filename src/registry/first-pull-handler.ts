import type { Context } from 'koa'
import { parseDigest } from '../oci/digest.js'
import { BlobUnknownError, DeniedError, NameInvalidError, RangeInvalidError, UnavailableError } from '../oci/errors.js'
import { OCTET_STREAM } from '../oci/mediatype.js'
import { parseNamespaceParam } from '../oci/paths.js'
import { isRepository } from '../oci/reference.js'
import { UPSTREAM_REFUSED_HEADER } from '../protocol/peer-api.js'
import type { FirstPulls } from '../upstream/first-pulls.js'
import type { FirstPullRequest } from '../upstream/pull-source.js'
import { UpstreamRefusedError } from '../upstream/tokens.js'
import { UpstreamUnavailableError } from '../upstream/upstream-source.js'
import { limitBodyStall, requestSignal } from '../net/request-signal.js'
import { abortable } from '../util/abort.js'

/** `<blobs|manifests>/<digest>` after the first-pull path, with `?ns=` and `?repo=`. */
export function parseFirstPullRequest(rest: string, query: Record<string, string | string[] | undefined>): FirstPullRequest {
  const [kind, digest, ...extra] = rest.split('/')
  if ((kind !== 'blobs' && kind !== 'manifests') || extra.length > 0) throw new NameInvalidError('a first pull is asked as <blobs|manifests>/<digest>')
  const registry = parseNamespaceParam(query['ns'])
  const repository = query['repo']
  if (!registry) throw new NameInvalidError('a first pull needs the registry in ?ns=')
  if (typeof repository !== 'string' || !isRepository(repository)) throw new NameInvalidError('a first pull needs a repository name in ?repo=')
  return { registry, repository, digest: parseDigest(digest ?? ''), kind }
}

/** Where a peer asks the pull to start: `bytes=<from>-`, or the start. */
function parseFrom(header: string | undefined): number {
  if (header === undefined) return 0
  const match = /^bytes=(\d{1,15})-$/.exec(header)
  if (!match) throw new RangeInvalidError('a first pull takes only Range: bytes=<from>-')
  return Number(match[1])
}

/**
 * A peer's first pull: this node pulls the content (or follows the pull it runs) and sends it
 * as it arrives. It acts for every such request, whichever node it thinks should fetch.
 */
export async function serveFirstPull(ctx: Context, pulls: FirstPulls | undefined, clientTimeoutMs: number, request: FirstPullRequest): Promise<void> {
  const from = parseFrom(ctx.request.headers.range)
  if (!pulls) throw new BlobUnknownError(request.digest, 'this node does not pull from upstream (--upstream-fetch=false)')
  const signal = requestSignal(ctx)
  let pull
  try {
    pull = await abortable(pulls.open(request), signal)
  } catch (err) {
    if (err instanceof UpstreamRefusedError) throw new DeniedError(err.message, { [UPSTREAM_REFUSED_HEADER]: '1' })
    if (err instanceof UpstreamUnavailableError) throw new UnavailableError(err.message)
    throw err
  }
  if (from >= pull.size && pull.size > 0) throw new RangeInvalidError(`byte ${from} is past the end`, pull.size)
  ctx.type = OCTET_STREAM
  ctx.status = from > 0 ? 206 : 200
  if (from > 0) ctx.set('Content-Range', `bytes ${from}-${pull.size - 1}/${pull.size}`)
  ctx.length = pull.size - from
  if (ctx.method === 'GET' && pull.size > 0) {
    ctx.body = pull.follow({ start: from, end: pull.size - 1 }, ctx.request.socket.remoteAddress ?? 'unknown')
    limitBodyStall(ctx, clientTimeoutMs)
  } else if (ctx.method === 'GET') {
    ctx.body = Buffer.alloc(0)
  }
}
