import type { Dispatcher } from 'undici'
import { collect } from '../content/read.js'
import { request } from 'undici'
import type { Clock } from '../util/clock.js'
import { ShoalError } from '../util/errors.js'
import type { BearerChallenge } from './challenge.js'

/** Upstream refused what shoal asks on nobody's behalf (anonymously): containerd must go with its own credentials. */
export class UpstreamRefusedError extends ShoalError {
  constructor(readonly status: number, why: string) {
    super(why)
  }
}

/** The distribution spec's floor for a token's life when the realm says nothing or less. */
const MIN_TOKEN_LIFETIME_S = 60
/** A token is renewed this long before it expires, so a request never carries one that just ran out. */
const RENEW_BEFORE_MS = 5_000
const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
const MAX_TOKENS = 1024

interface CachedToken {
  token: string
  expiresAt: number
}

/** Anonymous pull tokens from registries' realms, kept until they expire. */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>()

  constructor(private readonly clock: Clock) {}

  /** A token still valid for `key` (one per registry and repository), if one was fetched. */
  cached(key: string): string | undefined {
    const entry = this.tokens.get(key)
    if (!entry) return undefined
    if (entry.expiresAt - RENEW_BEFORE_MS > this.clock.now()) return entry.token
    this.tokens.delete(key)
    return undefined
  }

  /** Asks the challenge's realm for an anonymous token (no credentials) and keeps it under `key`. */
  async fetch(key: string, challenge: BearerChallenge, dispatcher: Dispatcher, signal: AbortSignal): Promise<string> {
    const url = new URL(challenge.realm)
    if (challenge.service) url.searchParams.set('service', challenge.service)
    if (challenge.scope) url.searchParams.set('scope', challenge.scope)
    const response = await request(url, { method: 'GET', dispatcher, signal, headers: { accept: 'application/json' } })
    const text = (await collect(response.body, MAX_TOKEN_RESPONSE_BYTES)).toString('utf8')
    if (response.statusCode === 401 || response.statusCode === 403) throw new UpstreamRefusedError(response.statusCode, `${url.host} refused an anonymous token (${response.statusCode}): the image needs credentials`)
    if (response.statusCode !== 200) throw new ShoalError(`token request to ${url.host} answered ${response.statusCode}`)
    const { token, lifetimeS } = parseTokenResponse(text, url.host)
    if (this.tokens.size >= MAX_TOKENS) this.tokens.delete(this.tokens.keys().next().value as string)
    this.tokens.set(key, { token, expiresAt: this.clock.now() + lifetimeS * 1000 })
    return token
  }
}

function parseTokenResponse(text: string, host: string): { token: string; lifetimeS: number } {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new ShoalError(`the token from ${host} is not JSON`)
  }
  const fields = typeof body === 'object' && body !== null ? body as Record<string, unknown> : {}
  const token = typeof fields['token'] === 'string' ? fields['token'] : fields['access_token']
  if (typeof token !== 'string' || token.length === 0) throw new ShoalError(`the answer of ${host} holds no token`)
  const expiresIn = typeof fields['expires_in'] === 'number' && Number.isFinite(fields['expires_in']) ? fields['expires_in'] : 0
  return { token, lifetimeS: Math.max(MIN_TOKEN_LIFETIME_S, expiresIn) }
}
