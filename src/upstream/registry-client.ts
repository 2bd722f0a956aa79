import { rootCertificates } from 'node:tls'
import type { Logger } from 'pino'
import { Agent, request, type Dispatcher } from 'undici'
import type { Clock } from '../util/clock.js'
import { ShoalError } from '../util/errors.js'
import { parseBearerChallenge } from './challenge.js'
import type { UpstreamTarget } from './hosts.js'
import { TokenCache, UpstreamRefusedError } from './tokens.js'

export const DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS = 5_000
export const DEFAULT_UPSTREAM_HEADERS_TIMEOUT_MS = 15_000
export const DEFAULT_UPSTREAM_BODY_TIMEOUT_MS = 30_000
const MAX_REDIRECTS = 5
const REDIRECT = new Set([301, 302, 303, 307, 308])

export interface UpstreamClientInit {
  connectTimeoutMs?: number
  headersTimeoutMs?: number
  /** A body that sends nothing for this long is cut. */
  bodyTimeoutMs?: number
}

export interface UpstreamRequest {
  method: 'GET' | 'HEAD'
  /** The repository in the registry (e.g. `library/nginx`): the scope of the token. */
  repository: string
  /** The API path, e.g. `/v2/library/nginx/blobs/sha256:…`. */
  path: string
  headers?: Record<string, string>
  signal: AbortSignal
}

export interface UpstreamResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  /** undici's body: a Readable that can also be read away (`dump`). */
  body: UpstreamBody
  /** Where the answer finally came from (after redirects). */
  url: URL
}

type UpstreamBody = Dispatcher.ResponseData['body']

export class UpstreamRedirectError extends ShoalError {}

/**
 * Requests to upstream registries on nobody's behalf: anonymous pull tokens (the distribution
 * token flow, cached until they expire), redirects followed without carrying `Authorization`
 * to another host, TLS verified against the system's CAs or the hosts.toml `ca`.
 */
export class UpstreamClient {
  private readonly agents = new Map<string, Agent>()
  private readonly plain: Agent
  private readonly tokens: TokenCache

  constructor(private readonly components: { clock: Clock; logger: Logger }, private readonly init: UpstreamClientInit = {}) {
    this.tokens = new TokenCache(components.clock)
    this.plain = this.agent({ rejectUnauthorized: true })
  }

  /** The final answer (any status but a redirect); throws UpstreamRefusedError when an anonymous token is refused. */
  async fetch(target: UpstreamTarget, upstreamRequest: UpstreamRequest): Promise<UpstreamResponse> {
    const key = `${target.server.origin}|${upstreamRequest.repository}`
    let token = this.tokens.cached(key)
    let response = await this.follow(target, upstreamRequest, token)
    if (response.status !== 401) return response
    const challenge = parseBearerChallenge(response.headers['www-authenticate'])
    await discard(response.body)
    if (!challenge || token) throw new UpstreamRefusedError(401, `${target.server.host} refused ${upstreamRequest.path} to an anonymous client`)
    const scope = challenge.scope ?? `repository:${upstreamRequest.repository}:pull`
    token = await this.tokens.fetch(key, { ...challenge, scope }, this.dispatcherFor(target, challenge.realm), upstreamRequest.signal)
    response = await this.follow(target, upstreamRequest, token)
    if (response.status === 401) {
      await discard(response.body)
      throw new UpstreamRefusedError(401, `${target.server.host} refused ${upstreamRequest.path} with an anonymous token`)
    }
    return response
  }

  async close(): Promise<void> {
    await Promise.all([this.plain, ...this.agents.values()].map((agent) => agent.close()))
    this.agents.clear()
  }

  private async follow(target: UpstreamTarget, upstreamRequest: UpstreamRequest, token: string | undefined): Promise<UpstreamResponse> {
    let url = new URL(upstreamRequest.path, target.server)
    for (let hop = 0; ; hop++) {
      const sameHost = url.origin === target.server.origin
      const headers = { ...upstreamRequest.headers, ...(token && sameHost ? { authorization: `Bearer ${token}` } : {}) }
      const answer = await request(url, { method: upstreamRequest.method, headers, signal: upstreamRequest.signal, dispatcher: this.dispatcherFor(target, url) })
      const location = answer.headers['location']
      if (!REDIRECT.has(answer.statusCode) || typeof location !== 'string') {
        return { status: answer.statusCode, headers: answer.headers, body: answer.body, url }
      }
      await discard(answer.body)
      if (hop >= MAX_REDIRECTS) throw new UpstreamRedirectError(`${target.server.host}: more than ${MAX_REDIRECTS} redirects for ${upstreamRequest.path}`)
      const next = new URL(location, url)
      if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new UpstreamRedirectError(`${target.server.host} redirected to a ${next.protocol} URL`)
      if (url.protocol === 'https:' && next.protocol === 'http:') throw new UpstreamRedirectError(`${target.server.host} redirected from https to http`)
      url = next
    }
  }

  /** The registry's own host is reached with its hosts.toml TLS settings; any other host (a redirect, a realm) with the system's. */
  private dispatcherFor(target: UpstreamTarget, url: URL): Dispatcher {
    if (url.origin !== target.server.origin || (target.ca.length === 0 && !target.skipVerify)) return this.plain
    const key = `${target.server.origin}|${target.ca.join('')}|${target.skipVerify}`
    let agent = this.agents.get(key)
    if (!agent) {
      const ca = target.ca.length > 0 ? [...rootCertificates, ...target.ca] : undefined
      agent = this.agent({ rejectUnauthorized: !target.skipVerify, ...(ca ? { ca } : {}) })
      this.agents.set(key, agent)
      if (target.skipVerify) this.components.logger.warn({ registry: target.registry }, 'hosts.toml says skip_verify: the upstream certificate is not checked')
    }
    return agent
  }

  private agent(tls: { rejectUnauthorized: boolean; ca?: string[] }): Agent {
    return new Agent({
      connect: { timeout: this.init.connectTimeoutMs ?? DEFAULT_UPSTREAM_CONNECT_TIMEOUT_MS, ...tls },
      headersTimeout: this.init.headersTimeoutMs ?? DEFAULT_UPSTREAM_HEADERS_TIMEOUT_MS,
      bodyTimeout: this.init.bodyTimeoutMs ?? DEFAULT_UPSTREAM_BODY_TIMEOUT_MS,
    })
  }
}

/** Reads away a small body (up to 64 KiB, then the connection is closed), so the connection can be used again. */
export async function discard(body: UpstreamBody): Promise<void> {
  await body.dump({ limit: 64 * 1024 }).catch(() => {})
}
