import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Logger } from 'pino'
import { rawErrorResponse } from '../oci/errors.js'
import type { HostPort } from './address.js'

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void

export const MAX_HEADER_BYTES = 16 * 1024

/**
 * An HTTP server behind `start()`/`stop()`. Requests Node's parser rejects (oversized or
 * malformed headers) still get an OCI error body. `stop()` is safe to call twice.
 */
export class HttpServer {
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()

  constructor(private readonly components: { logger: Logger }, private readonly init: { address: HostPort; listener: RequestListener }) {}

  async start(): Promise<AddressInfo> {
    if (this.server) return this.server.address() as AddressInfo
    const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, this.init.listener)
    server.on('connection', (socket) => {
      this.sockets.add(socket)
      socket.once('close', () => this.sockets.delete(socket))
    })
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.rejectClient(err, socket))
    server.headersTimeout = 30_000
    server.requestTimeout = 0
    server.keepAliveTimeout = 30_000
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
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW'
    const head = (err as { rawPacket?: Buffer }).rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD '
    this.components.logger.debug({ code: err.code }, 'rejected a malformed request')
    socket.end(tooLarge
      ? rawErrorResponse(431, 'Request Header Fields Too Large', 'UNSUPPORTED', `request headers exceed ${MAX_HEADER_BYTES} bytes`, head)
      : rawErrorResponse(400, 'Bad Request', 'UNSUPPORTED', 'malformed HTTP request', head))
  }
}
