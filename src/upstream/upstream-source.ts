import { digestAlgorithm } from '../oci/digest.js'
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES } from '../oci/mediatype.js'
import { ShoalError } from '../util/errors.js'
import { upstreamFor } from './hosts.js'
import { wholeSize, type FirstPullRequest, type PullSource, type SourceBody } from './pull-source.js'
import { discard, type UpstreamClient } from './registry-client.js'

/** Upstream did not give the content (404, 429, 5xx, no length, this node's limit): containerd should ask it itself. */
export class UpstreamUnavailableError extends ShoalError {
  constructor(readonly status: number | undefined, why: string) {
    super(why)
  }
}

export const DEFAULT_MAX_UPSTREAM_FETCHES = 8

export interface UpstreamSourceInit {
  /** containerd's hosts.toml tree (`--containerd-registry-config-path`), where each registry's upstream is named. */
  registryConfigPath: string | undefined
  /** Bodies read from upstream at once on this node (`--max-upstream-fetches`). */
  maxConcurrent?: number
  /** The registries containerd mirrors through shoal (`--mirrored-registries`); empty: any `?ns=`. */
  registries?: string[]
}

/**
 * The registry itself as a source of a first pull: the server containerd would ask (its
 * hosts.toml), anonymously, at most `maxConcurrent` bodies at once on this node.
 */
export class UpstreamSource {
  private running = 0

  constructor(private readonly components: { client: UpstreamClient }, private readonly init: UpstreamSourceInit) {}

  /** The source that asks upstream for `request`, named after the server it asks. */
  forRequest(request: FirstPullRequest): PullSource {
    return { kind: 'upstream', name: `upstream ${request.registry}`, open: (from, signal) => this.open(request, from, signal) }
  }

  private async open(request: FirstPullRequest, from: number, signal: AbortSignal): Promise<SourceBody> {
    const registries = this.init.registries ?? []
    if (registries.length > 0 && !registries.includes(request.registry)) throw new UpstreamUnavailableError(undefined, `${request.registry} is not one of the mirrored registries (--mirrored-registries)`)
    if (digestAlgorithm(request.digest) !== 'sha256') throw new UpstreamUnavailableError(undefined, `only sha256 content is fetched from upstream, not ${request.digest}`)
    const limit = this.init.maxConcurrent ?? DEFAULT_MAX_UPSTREAM_FETCHES
    if (this.running >= limit) throw new UpstreamUnavailableError(undefined, `this node already reads ${this.running} bodies from upstream (--max-upstream-fetches=${limit})`)
    this.running++
    let counted = true
    const done = (): void => {
      if (counted) this.running--
      counted = false
    }
    try {
      const target = await upstreamFor(request.registry, this.init.registryConfigPath)
      const path = `/v2/${request.repository}/${request.kind}/${request.digest}`
      const headers: Record<string, string> = {}
      if (request.kind === 'manifests') headers['accept'] = [...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES].join(', ')
      if (from > 0) headers['range'] = `bytes=${from}-`
      const response = await this.components.client.fetch(target, { method: 'GET', repository: request.repository, path, signal, headers })
      const size = wholeSize(response.status, header(response.headers['content-length']), header(response.headers['content-range']), from)
      if (size === undefined) {
        await discard(response.body)
        throw new UpstreamUnavailableError(response.status, `${target.server.host} answered ${response.status} for ${path}${from > 0 ? ` from byte ${from}` : ''}`)
      }
      response.body.once('close', done)
      return { size, body: response.body, server: target.server.host }
    } catch (err) {
      done()
      throw err
    }
  }
}

function header(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}
