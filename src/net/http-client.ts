import { Agent, request, type IncomingMessage } from 'node:http'

/** Connections kept or opened to one peer at once; further requests wait for one. */
export const MAX_SOCKETS_PER_PEER = 16
const SMALL_BODY_BYTES = 64 * 1024

export interface HttpAnswer {
  status: number
  header(name: string): string | undefined
  body: IncomingMessage
  /** Drops the body unread: a small one is drained, a large one closes the connection. */
  discard(): void
}

export interface HttpRequestInit {
  host: string
  port: number
  path: string
  method?: string
  headers?: Record<string, string>
  signal?: AbortSignal | undefined
}

/**
 * Requests to other nodes over node:http with keep-alive. Unlike fetch on Node 20, an aborted
 * request closes its connection at once: a frozen peer (its kernel still accepts connections)
 * cannot collect this node's sockets, one per request given up on.
 */
export class HttpClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS_PER_PEER })

  send(init: HttpRequestInit): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const outgoing = request({ host: init.host, port: init.port, path: init.path, method: init.method ?? 'GET', headers: init.headers ?? {},
        agent: this.agent, ...(init.signal ? { signal: init.signal } : {}) }, (body) => {
        resolve({
          status: body.statusCode ?? 0,
          header: (name) => {
            const value = body.headers[name.toLowerCase()]
            return Array.isArray(value) ? value.join(', ') : value
          },
          body,
          discard: () => {
            if (body.complete) return
            // An empty or small body is read to its end, so the connection can be used again.
            const small = init.method === 'HEAD' || Number(body.headers['content-length'] ?? Infinity) <= SMALL_BODY_BYTES
            if (small) body.resume()
            else body.destroy()
          },
        })
      })
      outgoing.on('error', reject)
      outgoing.end()
    })
  }

  /** Closes every kept connection. */
  close(): void {
    this.agent.destroy()
  }
}
