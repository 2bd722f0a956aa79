import { connect, type Socket } from 'node:net'
import { ShoalError } from '../util/errors.js'

export class RangeAnswerError extends ShoalError {}

/** Largest status line and headers of an answer; more is refused. */
export const MAX_HEAD_BYTES = 16 * 1024
/** A kept connection unused this long is closed (peers keep theirs 30 s by default). */
export const IDLE_CONNECTION_MS = 10_000
/** Idle connections kept to one peer. */
export const MAX_IDLE_PER_PEER = 8
/** Exchanges with one peer at once; further ones wait for one to end. */
export const MAX_EXCHANGES_PER_PEER = 16

export interface RangeRequest {
  host: string
  port: number
  path: string
  headers: Record<string, string>
  /** The answer's body is read into this buffer; it must be exactly this long. */
  into: Buffer
  signal?: AbortSignal | undefined
  /** Called as parts of the body arrive. */
  onBytes?: () => void
}

export interface RangeAnswer {
  status: number
  header(name: string): string | undefined
  /** Whether the body filled `into` (only when the status is 206 and its length is `into.length`). */
  filled: boolean
}

/** One exchange on a connection: the answer's head goes into the scratch buffer, its body into `into`. */
interface Exchange {
  request: RangeRequest
  head: number
  answer?: RangeAnswer
  body: number
  resolve: (answer: RangeAnswer) => void
  reject: (err: Error) => void
}

interface Connection {
  socket: Socket
  key: string
  scratch: Buffer
  exchange?: Exchange | undefined
  idleTimer?: NodeJS.Timeout | undefined
}

/**
 * GETs of a byte range from other nodes over HTTP/1.1 with keep-alive, the body read by the
 * kernel straight into the caller's buffer (node:http hands each body chunk over as a fresh
 * copy of a fresh 64 KiB read, which the caller copies again: three allocations and two copies
 * per chunk of a piece). Only what a piece answer needs: a status line, headers, and a body of
 * Content-Length bytes; anything else (chunked, too long a head, bytes past the body) ends
 * the connection with a RangeAnswerError.
 */
export class RangeClient {
  private readonly idle = new Map<string, Connection[]>()
  private readonly open = new Set<Connection>()
  private readonly running = new Map<string, number>()
  private readonly waiting = new Map<string, (() => void)[]>()

  async get(request: RangeRequest): Promise<RangeAnswer> {
    const key = `${request.host}:${request.port}`
    await this.turn(key, request.signal)
    try {
      return await this.getNow(key, request)
    } finally {
      this.release(key)
    }
  }

  private async getNow(key: string, request: RangeRequest): Promise<RangeAnswer> {
    const reused = this.idle.get(key)?.pop()
    if (!reused) return this.exchange(this.connect(key, request), request)
    try {
      return await this.exchange(reused, request)
    } catch (err) {
      // The peer may have closed the kept connection just as it was reused: once more, on a new one.
      if (!request.signal?.aborted && err instanceof ClosedBeforeAnswerError) return this.exchange(this.connect(key, request), request)
      throw err
    }
  }

  /** Resolves once fewer than MAX_EXCHANGES_PER_PEER exchanges with this peer run. */
  private async turn(key: string, signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted()
    const running = this.running.get(key) ?? 0
    if (running < MAX_EXCHANGES_PER_PEER) {
      this.running.set(key, running + 1)
      return
    }
    const queue = this.waiting.get(key) ?? []
    this.waiting.set(key, queue)
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const at = queue.indexOf(wake)
        if (at >= 0) queue.splice(at, 1)
        reject(signal!.reason as Error)
      }
      const wake = (): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      queue.push(wake)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** An exchange ended: the next one waiting for this peer takes its turn. */
  private release(key: string): void {
    const queue = this.waiting.get(key)
    const next = queue?.shift()
    if (queue?.length === 0) this.waiting.delete(key)
    if (next) return next()
    const running = (this.running.get(key) ?? 1) - 1
    if (running > 0) this.running.set(key, running)
    else this.running.delete(key)
  }

  /** Closes every connection; exchanges in progress fail. */
  close(): void {
    for (const connection of [...this.open]) connection.socket.destroy()
    this.idle.clear()
  }

  private connect(key: string, request: RangeRequest): Connection {
    const scratch = Buffer.allocUnsafe(MAX_HEAD_BYTES)
    const connection = { key, scratch } as Connection
    connection.socket = connect({
      host: request.host, port: request.port, noDelay: true,
      onread: { buffer: () => this.readTarget(connection), callback: (bytes: number) => { this.received(connection, bytes); return true } },
    })
    this.open.add(connection)
    connection.socket.on('error', (err) => this.ended(connection, err))
    connection.socket.on('close', () => this.ended(connection, new Error('closed')))
    return connection
  }

  private exchange(connection: Connection, request: RangeRequest): Promise<RangeAnswer> {
    clearTimeout(connection.idleTimer)
    connection.socket.ref()
    return new Promise((resolve, reject) => {
      const exchange: Exchange = { request, head: 0, body: 0, resolve, reject }
      connection.exchange = exchange
      const onAbort = (): void => {
        if (connection.exchange !== exchange) return
        connection.socket.destroy()
      }
      request.signal?.addEventListener('abort', onAbort, { once: true })
      const settle = (): void => request.signal?.removeEventListener('abort', onAbort)
      exchange.resolve = (answer) => { settle(); resolve(answer) }
      exchange.reject = (err) => { settle(); reject(request.signal?.aborted ? request.signal.reason as Error : err) }
      const head = [`GET ${request.path} HTTP/1.1`, `Host: ${connection.key}`, ...Object.entries(request.headers).map(([name, value]) => `${name}: ${value}`)]
      connection.socket.write(`${head.join('\r\n')}\r\n\r\n`)
    })
  }

  /** Where the next read goes: the rest of the head's scratch, or the rest of the body. */
  private readTarget(connection: Connection): Uint8Array {
    const exchange = connection.exchange
    if (exchange?.answer) return exchange.request.into.subarray(exchange.body)
    return connection.scratch.subarray(exchange?.head ?? 0)
  }

  private received(connection: Connection, bytes: number): void {
    const exchange = connection.exchange
    if (!exchange) return this.fail(connection, new RangeAnswerError('bytes arrived on an idle connection'))
    if (exchange.answer) return this.bodyReceived(connection, exchange, bytes)
    exchange.head += bytes
    const scratch = connection.scratch.subarray(0, exchange.head)
    const end = scratch.indexOf('\r\n\r\n')
    if (end < 0) {
      if (exchange.head === MAX_HEAD_BYTES) this.fail(connection, new RangeAnswerError(`answer head longer than ${MAX_HEAD_BYTES} bytes`))
      return
    }
    let answer: RangeAnswer
    try {
      answer = parseHead(scratch.subarray(0, end).toString('latin1'), exchange.request.into.length)
    } catch (err) {
      return this.fail(connection, err as Error)
    }
    exchange.answer = answer
    const early = scratch.subarray(end + 4)
    if (!answer.filled) {
      // Not the piece: the connection is not worth keeping to read what follows.
      connection.exchange = undefined
      connection.socket.destroy()
      return exchange.resolve(answer)
    }
    if (early.length > exchange.request.into.length) return this.fail(connection, new RangeAnswerError('more bytes than the answer\'s length'))
    early.copy(exchange.request.into)
    this.bodyReceived(connection, exchange, early.length)
  }

  private bodyReceived(connection: Connection, exchange: Exchange, bytes: number): void {
    exchange.body += bytes
    if (bytes > 0) exchange.request.onBytes?.()
    if (exchange.body < exchange.request.into.length) return
    connection.exchange = undefined
    this.keep(connection)
    exchange.resolve(exchange.answer!)
  }

  private keep(connection: Connection): void {
    const idle = this.idle.get(connection.key) ?? []
    if (idle.length >= MAX_IDLE_PER_PEER) return void connection.socket.destroy()
    idle.push(connection)
    this.idle.set(connection.key, idle)
    connection.socket.unref()
    connection.idleTimer = setTimeout(() => connection.socket.destroy(), IDLE_CONNECTION_MS).unref()
  }

  private fail(connection: Connection, err: Error): void {
    const exchange = connection.exchange
    connection.exchange = undefined
    connection.socket.destroy()
    exchange?.reject(err)
  }

  private ended(connection: Connection, err: Error): void {
    clearTimeout(connection.idleTimer)
    this.open.delete(connection)
    const idle = this.idle.get(connection.key)
    const at = idle?.indexOf(connection) ?? -1
    if (at >= 0) idle!.splice(at, 1)
    if (idle?.length === 0) this.idle.delete(connection.key)
    const exchange = connection.exchange
    connection.exchange = undefined
    if (!exchange) return
    exchange.reject(exchange.answer || exchange.head > 0 ? new RangeAnswerError(`connection ended after ${exchange.body} body bytes: ${err.message}`, { cause: err })
      : new ClosedBeforeAnswerError(err))
  }
}

/** The connection closed (or failed) before any byte of the answer came. */
class ClosedBeforeAnswerError extends RangeAnswerError {
  constructor(cause?: Error) {
    super(`connection ended before an answer${cause ? `: ${cause.message}` : ''}`, cause ? { cause } : {})
  }
}

/** Status and headers of an answer head; `filled` is whether a body of `length` bytes follows. */
function parseHead(text: string, length: number): RangeAnswer {
  const lines = text.split('\r\n')
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '')
  if (!status) throw new RangeAnswerError('not an HTTP/1.x answer')
  const headers = new Map<string, string>()
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) throw new RangeAnswerError('malformed header line')
    const name = line.slice(0, colon).toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers.set(name, headers.has(name) ? `${headers.get(name)!}, ${value}` : value)
  }
  if (headers.has('transfer-encoding')) throw new RangeAnswerError('a chunked answer where a length was expected')
  const code = Number(status[1])
  const declared = headers.get('content-length')
  const filled = code === 206 && declared !== undefined && /^\d+$/.test(declared) && Number(declared) === length
  return { status: code, header: (name) => headers.get(name.toLowerCase()), filled }
}
