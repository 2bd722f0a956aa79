import type { Context } from 'koa'
import { ContentNotFoundError } from '../content/provider.js'
import { readSmallBlob } from '../content/read.js'
import type { Digest } from '../oci/digest.js'
import { BlobUnknownError, ManifestUnknownError } from '../oci/errors.js'
import { MAX_MANIFEST_SIZE, OCTET_STREAM, parseManifest } from '../oci/mediatype.js'
import { contentRange, parseRange, rangeLength } from '../oci/range.js'
import { tagReference } from '../oci/reference.js'
import type { RegistryComponents } from './app.js'
import { requestSignal } from './request.js'

export interface BlobRequest {
  digest: Digest
  /** The upstream registry containerd is pulling from (`?ns=`), when it says. */
  registry: string | undefined
}

export async function serveBlob(ctx: Context, components: RegistryComponents, request: BlobRequest): Promise<void> {
  const signal = requestSignal(ctx)
  const info = await components.content.stat(request.digest, signal)
  countMirrorRequest(components, request.registry, info !== undefined)
  if (!info) throw new BlobUnknownError(request.digest)
  const range = parseRange(ctx.request.headers.range, info.size)
  ctx.set('Docker-Content-Digest', request.digest)
  ctx.set('Accept-Ranges', 'bytes')
  ctx.type = OCTET_STREAM
  if (ctx.method === 'GET') {
    try {
      ctx.body = await components.content.open(request.digest, range, signal)
    } catch (err) {
      if (err instanceof ContentNotFoundError) throw new BlobUnknownError(request.digest)
      throw err
    }
  }
  ctx.status = range ? 206 : 200
  if (range) ctx.set('Content-Range', contentRange(range, info.size))
  ctx.length = range ? rangeLength(range) : info.size
  components.logger.debug({ digest: request.digest, registry: request.registry, range: ctx.request.headers.range, method: ctx.method }, 'serving blob')
}

export interface ManifestRequest {
  name: string
  reference: { digest: Digest } | { tag: string }
  registry: string | undefined
  resolveTags: boolean
}

export async function serveManifest(ctx: Context, components: RegistryComponents, request: ManifestRequest): Promise<void> {
  const signal = requestSignal(ctx)
  const digest = 'digest' in request.reference ? request.reference.digest : await resolveTag(components, request, request.reference.tag, signal)
  const bytes = await readSmallBlob(components.content, digest, MAX_MANIFEST_SIZE, signal)
  const manifest = bytes && parseManifest(bytes)
  countMirrorRequest(components, request.registry, manifest !== undefined)
  if (!bytes || !manifest) throw new ManifestUnknownError(digest)
  ctx.set('Docker-Content-Digest', digest)
  ctx.type = manifest.mediaType
  ctx.length = bytes.length
  if (ctx.method === 'GET') ctx.body = bytes
  ctx.status = 200
  components.logger.debug({ name: request.name, reference: request.reference, registry: request.registry, digest }, 'serving manifest')
}

async function resolveTag(components: RegistryComponents, request: ManifestRequest, tag: string, signal: AbortSignal): Promise<Digest> {
  if (!request.resolveTags) {
    countMirrorRequest(components, request.registry, false)
    throw new ManifestUnknownError(tag, 'tag resolution is disabled on this node (--resolve-tags=false)')
  }
  if (request.registry === undefined) {
    countMirrorRequest(components, request.registry, false)
    throw new ManifestUnknownError(tag, 'resolving a tag needs the registry in ?ns=<registry>, as containerd sends it')
  }
  const digest = await components.content.resolve(tagReference(request.registry, request.name, tag), signal)
  if (!digest) {
    countMirrorRequest(components, request.registry, false)
    throw new ManifestUnknownError(tagReference(request.registry, request.name, tag))
  }
  return digest
}

function countMirrorRequest(components: RegistryComponents, registry: string | undefined, hit: boolean): void {
  components.metrics.mirrorRequests.inc({ registry: registry ?? '', cache: hit ? 'hit' : 'miss' })
}
