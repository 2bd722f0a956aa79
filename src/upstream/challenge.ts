/** A `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge (the OCI distribution token flow). */
export interface BearerChallenge {
  realm: URL
  service: string | undefined
  scope: string | undefined
}

const PARAM = /\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*(?:,|$)/y

/**
 * The Bearer challenge of a 401's `WWW-Authenticate` header, or undefined when there is none
 * (Basic only, no header, or a realm that is not an http(s) URL).
 */
export function parseBearerChallenge(header: string | string[] | undefined): BearerChallenge | undefined {
  for (const value of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
    const match = /^\s*Bearer\s+/i.exec(value)
    if (!match) continue
    const params = new Map<string, string>()
    PARAM.lastIndex = match[0].length
    for (let found = PARAM.exec(value); found; found = PARAM.exec(value)) {
      params.set(found[1]!.toLowerCase(), found[2] !== undefined ? found[2].replace(/\\(.)/g, '$1') : found[3]!)
      if (PARAM.lastIndex >= value.length) break
    }
    const realm = realmUrl(params.get('realm'))
    if (realm) return { realm, service: params.get('service'), scope: params.get('scope') }
  }
  return undefined
}

function realmUrl(value: string | undefined): URL | undefined {
  if (!value) return undefined
  try {
    const url = new URL(value)
    return url.protocol === 'https:' || url.protocol === 'http:' ? url : undefined
  } catch {
    return undefined
  }
}
