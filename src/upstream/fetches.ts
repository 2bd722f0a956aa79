import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { digestAlgorithm, digestHex, type Digest } from '../oci/digest.js'
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES } from '../oci/mediatype.js'
import { systemClock, type Clock } from '../util/clock.js'
import { ShoalError } from '../util/errors.js'
import { GrowingBlob } from './growing-blob.js'
import { upstreamFor } from './hosts.js'
import { discard, type UpstreamClient } from './registry-client.js'

/** Upstream did not give the content (404, 429, 5xx, no length): containerd should ask it itself. */
export class UpstreamUnavailableError extends ShoalError {
  constructor(readonly status: number | undefined, why: string) {
    super(why)
  }
}

export const DEFAULT_MAX_UPSTREAM_FETCHES = 8
export const DEFAULT_UPSTREAM_LINGER_MS = 60_000

export interface UpstreamFetchRequest {
  registry: string
  repository: string
  digest: Digest
  kind: 'blobs' | 'manifests'
}

export interface UpstreamFetch {
  blob: GrowingBlob
  size: number
  /** The content type upstream gave (the media type of a manifest). */
  mediaType: string | undefined
}

export interface UpstreamFetchesInit {
  dataDir: string
  /** containerd's hosts.toml tree (`--containerd-registry-config-path`), where each registry's upstream is named. */
  registryConfigPath: string | undefined
  maxConcurrent?: number
  stallMs: number
  /** How long a fetched blob stays (for late followers) once nobody reads it. */
  lingerMs?: number
}

/**
 * This node's fetches from upstream: one per digest (single flight: every request for it
 * follows the same body), at most `maxConcurrent` at once. A fetch lives on its own, not a
 * request's lifetime: late followers read it from the start, and it is kept `lingerMs` after
 * the last one left.
 */
export class UpstreamFetches {
  private readonly fetches = new Map<Digest, Promise<UpstreamFetch>>()
  private readonly stopped = new AbortController()
  private readonly clock: Clock
  private running = 0
  private readonly timers = new Set<() => void>()

  constructor(private readonly components: { client: UpstreamClient; logger: Logger; clock?: Clock }, private readonly init: UpstreamFetchesInit) {
    this.clock = components.clock ?? systemClock
  }

  /** The fetch of the request's digest, started if none runs; throws UpstreamUnavailableError or UpstreamRefusedError at once when upstream will not give it. */
  open(request: UpstreamFetchRequest): Promise<UpstreamFetch> {
    let fetch = this.fetches.get(request.digest)
    if (!fetch) {
      fetch = this.start(request)
      this.fetches.set(request.digest, fetch)
      fetch.catch(() => this.fetches.delete(request.digest))
    }
    return fetch
  }

  /** Aborts every fetch and removes their files. */
  async stop(): Promise<void> {
    this.stopped.abort(new ShoalError('shoal is stopping'))
    for (const cancel of this.timers) cancel()
    this.timers.clear()
    const fetches = [...this.fetches.values()]
    this.fetches.clear()
    for (const fetch of fetches) await fetch.then((started) => started.blob.remove(), () => {})
  }

  private async start(request: UpstreamFetchRequest): Promise<UpstreamFetch> {
    if (digestAlgorithm(request.digest) !== 'sha256') throw new UpstreamUnavailableError(undefined, `only sha256 content is fetched from upstream, not ${request.digest}`)
    if (this.running >= (this.init.maxConcurrent ?? DEFAULT_MAX_UPSTREAM_FETCHES)) throw new UpstreamUnavailableError(undefined, `this node already runs ${this.running} upstream fetches`)
    this.running++
    try {
      const target = await upstreamFor(request.registry, this.init.registryConfigPath)
      const path = `/v2/${request.repository}/${request.kind}/${request.digest}`
      const headers = request.kind === 'manifests' ? { accept: [...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES].join(', ') } : undefined
      const response = await this.components.client.fetch(target, { method: 'GET', repository: request.repository, path, signal: this.stopped.signal, ...(headers ? { headers } : {}) })
      const size = Number(response.headers['content-length'])
      if (response.status !== 200 || !Number.isSafeInteger(size)) {
        await discard(response.body)
        throw new UpstreamUnavailableError(response.status, `${target.server.host} answered ${response.status}${response.status === 200 ? ' without a length' : ''} for ${path}`)
      }
      await mkdir(join(this.init.dataDir, 'upstream'), { recursive: true })
      const blob = new GrowingBlob({ path: join(this.init.dataDir, 'upstream', digestHex(request.digest)), digest: request.digest, size, stallMs: this.init.stallMs }, { clock: this.clock })
      const contentType = response.headers['content-type']
      this.components.logger.info({ registry: request.registry, repository: request.repository, digest: request.digest, size, server: target.server.host }, 'fetching from upstream')
      void blob.write(response.body).then(() => this.linger(request.digest, blob), (err: unknown) => {
        this.components.logger.warn({ digest: request.digest, err }, 'fetch from upstream failed')
        this.fetches.delete(request.digest)
      }).finally(() => { this.running-- })
      return { blob, size, mediaType: typeof contentType === 'string' ? contentType : undefined }
    } catch (err) {
      this.running--
      throw err
    }
  }

  /** Keeps a fetched blob while anybody follows it and `lingerMs` after, then removes it. */
  private linger(digest: Digest, blob: GrowingBlob): void {
    const lingerMs = this.init.lingerMs ?? DEFAULT_UPSTREAM_LINGER_MS
    const arm = (): void => {
      const cancel = this.clock.schedule(lingerMs, () => {
        this.timers.delete(cancel)
        if (blob.followers > 0) return arm()
        this.fetches.delete(digest)
        void blob.remove()
      })
      this.timers.add(cancel)
    }
    arm()
  }
}
