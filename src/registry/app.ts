import Koa from 'koa'
import { FIRST_PULL_PATH, METAINFO_PATH, PIECES_PATH } from '../protocol/peer-api.js'
import { parseDigest } from '../oci/digest.js'
import { API_VERSION, API_VERSION_HEADER, UnsupportedError } from '../oci/errors.js'
import { parseDistributionPath, parseNamespaceParam } from '../oci/paths.js'
import { ociErrors } from './errors.js'
import { holdBlobStream, serveBlob, serveManifest, serveMetainfo, servePieces, type RegistryComponents } from './handlers.js'
import { parseFirstPullRequest, serveFirstPull } from './first-pull-handler.js'
import { httpMetrics } from './http-metrics.js'
import { peerAuthentication } from './peer-auth.js'

/** The node's registry API: the local containerd's mirror and the peers' HTTP API. */
export function createRegistryApp(components: RegistryComponents): Koa {
  const app = new Koa()
  app.silent = true
  app.use(probes(components.ready))
  app.use(httpMetrics(components.metrics))
  app.use(ociErrors(components.logger))
  app.use(peerAuthentication(components.clusterKey, components.replay))
  app.use(async (ctx) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD')
      throw new UnsupportedError(405, `${ctx.method} is not supported: this registry is a read-only mirror`)
    }
    if (ctx.path.startsWith(METAINFO_PATH)) {
      await serveMetainfo(ctx, components, parseDigest(ctx.path.slice(METAINFO_PATH.length)))
      return
    }
    if (ctx.path.startsWith(PIECES_PATH)) {
      await servePieces(ctx, components, parseDigest(ctx.path.slice(PIECES_PATH.length)))
      return
    }
    if (ctx.path.startsWith(FIRST_PULL_PATH)) {
      const request = parseFirstPullRequest(ctx.path.slice(FIRST_PULL_PATH.length), ctx.query)
      if (ctx.method === 'GET') await holdBlobStream(ctx, components.blobStreams)
      await serveFirstPull(ctx, components.firstPulls, components.clientTimeoutMs, request)
      return
    }
    const route = parseDistributionPath(ctx.path)
    ctx.set(API_VERSION_HEADER, API_VERSION)
    if (route.kind === 'base') {
      ctx.body = {}
      return
    }
    const registry = parseNamespaceParam(ctx.query['ns'])
    if (route.kind === 'blob') await serveBlob(ctx, components, { name: route.name, digest: route.digest, registry })
    else await serveManifest(ctx, components, { name: route.name, reference: route.reference, registry })
  })
  return app
}

function probes(ready: () => boolean) {
  return async function probeMiddleware(ctx: Koa.Context, next: Koa.Next): Promise<void> {
    if (ctx.path === '/livez') {
      ctx.body = 'ok\n'
    } else if (ctx.path === '/readyz') {
      const isReady = ready()
      ctx.status = isReady ? 200 : 503
      ctx.body = isReady ? 'ok\n' : 'not ready\n'
    } else {
      await next()
    }
  }
}
