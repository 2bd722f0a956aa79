import type { Context } from 'koa'
import type { Digest } from '../oci/digest.js'
import { BlobUnknownError, ManifestUnknownError } from '../oci/errors.js'
import { OCTET_STREAM } from '../oci/mediatype.js'
import { contentRange, rangeLength } from '../oci/range.js'
import { INFOHASH_HEADER, PEER_REQUEST_HEADER, SOURCE_HEADER, WIRE_PORT_HEADER } from '../protocol/peer-api.js'
import type { Logger } from 'pino'
import type { MetainfoService } from '../mirror/metainfo-service.js'
import type { PieceService } from '../mirror/piece-service.js'
import type { Mirror } from '../mirror/mirror.js'
import type { MirrorSource, TransferLedger } from '../observe/ledger.js'
import type { LabelValues } from '../observe/label-values.js'
import type { Metrics } from '../observe/metrics.js'
import { limitBodyStall, requestSignal } from '../net/request-signal.js'
import type { StreamSlots } from './stream-slots.js'
import type { ClusterKey } from '../net/cluster-key.js'
import type { ReplayGuard } from '../net/replay-guard.js'
import type { FirstPulls } from '../upstream/first-pulls.js'

export interface RegistryComponents {
  mirror: Mirror
  metainfo: MetainfoService
  pieces: PieceService
  logger: Logger
  metrics: Metrics
  ledger: TransferLedger
  /** Whether this node is ready to serve (answers /readyz). */
  ready: () => boolean
  /** The bounded `registry` label of a request's `?ns=`. */
  registryLabels: LabelValues
  /** Blob bodies being streamed, and how many may be at once. */
  blobStreams: StreamSlots
  /** A client that reads nothing of a blob body for this long is disconnected. */
  clientTimeoutMs: number
  /** Requests from peers must prove it; none: open swarm. */
  clusterKey?: ClusterKey | undefined
  replay: ReplayGuard
  /** This node's first pulls, which peers may follow; none with --upstream-fetch=false. */
  firstPulls?: FirstPulls | undefined
}

/** The peer's address when another shoal node asks; such requests are never forwarded. */
function peerOf(ctx: Context): string | undefined {
  return ctx.get(PEER_REQUEST_HEADER) ? ctx.request.socket.remoteAddress ?? 'unknown' : undefined
}

export async function serveBlob(ctx: Context, components: RegistryComponents, request: { name: string; digest: Digest; registry: string | undefined }): Promise<void> {
  if (ctx.method === 'GET') await holdBlobStream(ctx, components.blobStreams)
  const fromPeer = peerOf(ctx)
  const started = performance.now()
  const answer = await countedMirrorRequest(components, request.registry, fromPeer, () => components.mirror.blob({
    name: request.name, digest: request.digest, registry: request.registry, rangeHeader: ctx.request.headers.range, head: ctx.method === 'HEAD', fromPeer,
  }, { signal: requestSignal(ctx) }))
  ctx.set('Docker-Content-Digest', request.digest)
  ctx.set('Accept-Ranges', 'bytes')
  ctx.set(SOURCE_HEADER, answer.source)
  ctx.type = OCTET_STREAM
  if (answer.body) {
    ctx.body = answer.body
    limitBodyStall(ctx, components.clientTimeoutMs)
  }
  ctx.status = answer.range ? 206 : 200
  if (answer.range) ctx.set('Content-Range', contentRange(answer.range, answer.size))
  ctx.length = answer.range ? rangeLength(answer.range) : answer.size
  recordAnswer(ctx, components, fromPeer, answer.source)
  components.logger.debug({ method: ctx.method, digest: request.digest, registry: request.registry, range: ctx.request.headers.range,
    source: answer.source, peer: fromPeer, ms: Math.round(performance.now() - started) }, 'blob')
}

export async function serveManifest(ctx: Context, components: RegistryComponents,
  request: { name: string; reference: { digest: Digest } | { tag: string }; registry: string | undefined }): Promise<void> {
  const fromPeer = peerOf(ctx)
  const answer = await countedMirrorRequest(components, request.registry, fromPeer, () =>
    components.mirror.manifest({ ...request, fromPeer }, { signal: requestSignal(ctx) }))
  ctx.set('Docker-Content-Digest', answer.digest)
  ctx.set(SOURCE_HEADER, answer.source)
  ctx.type = answer.mediaType
  if (ctx.method === 'GET') ctx.body = answer.bytes
  ctx.status = 200
  ctx.length = answer.bytes.length
  recordAnswer(ctx, components, fromPeer, answer.source)
  components.logger.debug({ method: ctx.method, name: request.name, reference: request.reference, registry: request.registry, digest: answer.digest, source: answer.source, peer: fromPeer }, 'manifest')
}

export async function serveMetainfo(ctx: Context, components: RegistryComponents, digest: Digest): Promise<void> {
  const answer = await components.metainfo.answer(digest, { signal: requestSignal(ctx) })
  if (!answer) throw new BlobUnknownError(digest, 'this node neither holds nor downloads the blob')
  ctx.set(WIRE_PORT_HEADER, String(answer.wirePort))
  if (answer.kind === 'downloading') {
    ctx.set(INFOHASH_HEADER, answer.infoHash)
    ctx.status = 202
    ctx.body = ''
    return
  }
  ctx.set(INFOHASH_HEADER, answer.metainfo.infoHash)
  ctx.type = 'application/x-bittorrent'
  ctx.body = answer.metainfo.torrent
}

/** A range of a blob for a peer's whole-piece request, from local content or verified pieces. */
export async function servePieces(ctx: Context, components: RegistryComponents, digest: Digest): Promise<void> {
  if (ctx.method === 'GET') await holdBlobStream(ctx, components.blobStreams)
  const answer = await components.pieces.open(digest, ctx.request.headers.range, ctx.request.socket.remoteAddress ?? 'unknown', { signal: requestSignal(ctx) })
  // Only a finished response has handed every byte to the kernel; one cut short may still be
  // writing from the buffer, which is then left to the collector instead of reused.
  ctx.res.once('finish', answer.release)
  ctx.type = OCTET_STREAM
  if (ctx.method === 'GET') {
    ctx.body = answer.body
    limitBodyStall(ctx, components.clientTimeoutMs)
  } else {
    answer.body.destroy()
  }
  ctx.status = 206
  ctx.set('Content-Range', contentRange(answer.range, answer.size))
  ctx.length = rangeLength(answer.range)
}

/** Takes one of the blob-stream slots until the response closes, waiting a bounded time for one, else 503. */
export async function holdBlobStream(ctx: Context, streams: StreamSlots): Promise<void> {
  const signal = requestSignal(ctx)
  const release = await streams.acquire(ctx.request.socket.remoteAddress ?? 'unknown', { signal })
  if (signal.aborted) release()
  else signal.addEventListener('abort', release, { once: true })
}

/** Records how the local containerd's request was answered, with the body bytes it gets. */
function recordAnswer(ctx: Context, components: RegistryComponents, fromPeer: string | undefined, source: MirrorSource): void {
  if (!fromPeer) components.ledger.record({ type: 'mirror-answered', source, bytes: ctx.method === 'HEAD' ? 0 : ctx.length })
}

/** Counts containerd's requests as hits (served, from here or peers) and misses (404). */
async function countedMirrorRequest<T>(components: RegistryComponents, registry: string | undefined, fromPeer: string | undefined, serve: () => Promise<T>): Promise<T> {
  try {
    const answer = await serve()
    if (!fromPeer) components.metrics.mirrorRequests.inc({ registry: components.registryLabels.of(registry), cache: 'hit' })
    return answer
  } catch (err) {
    if (!fromPeer && (err instanceof BlobUnknownError || err instanceof ManifestUnknownError)) {
      components.metrics.mirrorRequests.inc({ registry: components.registryLabels.of(registry), cache: 'miss' })
      components.ledger.record({ type: 'mirror-answered', source: 'upstream-fallback', bytes: 0 })
    }
    throw err
  }
}
