import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Logger } from 'pino'
import { rawErrorResponse } from '../oci/errors.js'
import type { HostPort } from './address.js'

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void

export const MAX_HEADER_BYTES = 16 * 1024
/** Longest wait for a request's headers, on an idle keep-alive connection, or for a client to take more bytes. */
export const DEFAULT_CLIENT_TIMEOUT_MS = 30_000

export interface HttpServerInit {
  address: HostPort
  listener: RequestListener
  clientTimeoutMs?: number
}

/**
 * An HTTP server behind `start()`/`stop()`. Requests Node's parser rejects (oversized or
 * malformed headers, headers that never complete, CONNECT) still get an OCI error body. A
 * connection that sends no complete headers, or sits idle, for the client timeout is closed, so
 * sockets cannot pile up. `stop()` is safe to call twice.
 */
export class HttpServer {
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()

  constructor(private readonly components: { logger: Logger }, private readonly init: HttpServerInit) {}

  async start(): Promise<AddressInfo> {
    if (this.server) return this.server.address() as AddressInfo
    const timeoutMs = this.init.clientTimeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS
    const checkMs = Math.min(1000, timeoutMs / 2)
    const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, connectionsCheckingInterval: checkMs }, this.init.listener)
    server.on('connection', (socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
    })
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.rejectClient(err, socket))
    server.on('connect', (_req, socket: Socket) => this.refuseConnect(socket))
    server.headersTimeout = timeoutMs
    // Blobs take as long as they take; a client that stops reading one is cut by limitBodyStall.
    server.requestTimeout = 0
    server.keepAliveTimeout = timeoutMs
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.init.address.port, this.init.address.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.server = server
    return server.address() as AddressInfo
  }

  address(): AddressInfo | undefined {
    return (this.server?.address() as AddressInfo | null) ?? undefined
  }

  async stop(): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = undefined
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeIdleConnections()
    for (const socket of this.sockets) socket.destroy()
    await closed
  }

  private rejectClient(err: NodeJS.ErrnoException, socket: Socket): void {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy()
      return
    }
    const head = (err as { rawPacket?: Buffer }).rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD '
    this.components.logger.debug({ code: err.code }, 'rejected a malformed or incomplete request')
    socket.end(clientErrorResponse(err.code, head))
  }

  private refuseConnect(socket: Socket): void {
    socket.on('error', () => {})
    socket.end(rawErrorResponse(405, 'Method Not Allowed', 'UNSUPPORTED', 'CONNECT is not supported: this registry is a read-only mirror (GET, HEAD)'))
  }
}

function clientErrorResponse(code: string | undefined, head: boolean): string {
  if (code === 'HPE_HEADER_OVERFLOW') return rawErrorResponse(431, 'Request Header Fields Too Large', 'UNSUPPORTED', `request headers exceed ${MAX_HEADER_BYTES} bytes`, head)
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return rawErrorResponse(408, 'Request Timeout', 'UNSUPPORTED', 'the request headers did not arrive in time', head)
  return rawErrorResponse(400, 'Bad Request', 'UNSUPPORTED', 'malformed HTTP request', head)
}
