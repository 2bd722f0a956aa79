import { request } from 'node:http'

export type Fetcher = (url: string | URL, init?: { method?: string; body?: Buffer | string; headers?: Record<string, string> }) => Promise<Response>

/** A fetch-like function that goes through the control namespace's proxy. */
export function proxyFetch(socketPath: string, timeoutMs = 120_000): Fetcher {
  return (url, init = {}) => new Promise<Response>((resolve, reject) => {
    const body = init.body === undefined ? undefined : Buffer.from(init.body)
    // A connection per request: a pooled one may have been closed by the proxy's keep-alive
    // timeout while this process was busy (building test images takes seconds of CPU), and
    // writing to it fails with EPIPE.
    const req = request({
      socketPath, path: String(url), method: init.method ?? 'GET', timeout: timeoutMs, agent: false,
      headers: { ...init.headers, ...(body ? { 'content-length': String(body.length) } : {}) },
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const status = res.statusCode ?? 502
        if (res.headers['x-proxy-error']) return reject(new Error(`proxy: ${res.headers['x-proxy-error']}`))
        const headers = new Headers()
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value)
        }
        const empty = status === 204 || status === 304 || init.method === 'HEAD'
        resolve(new Response(empty ? null : Buffer.concat(chunks), { status, headers }))
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`request to ${String(url)} timed out`)))
    req.on('error', reject)
    req.end(body)
  })
}
