import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'

/** How the test upstream answers for one digest. */
export interface UpstreamBehaviour {
  /** Answer this status (with no body) instead of the content. */
  status?: number
  /** With status 401: the WWW-Authenticate header to send. */
  challenge?: string
  /** Cut the connection after this many bytes of the body (the first answer only). */
  cutAt?: number
  /** Flip the byte at this offset. */
  corruptAt?: number
  /** Send at most this many bytes per second. */
  bytesPerSecond?: number
}

export interface UpstreamRequestRecord {
  method: string
  path: string
  range: string | undefined
  from: string
  /** Body bytes sent (so far). */
  sent: number
}

const CHUNK = 64 * 1024

/**
 * A registry upstream of shoal for fault tests: blobs and manifests by digest from memory,
 * `Range: bytes=N-` honoured, and per digest a misbehaviour (a status, a cut, a wrong byte, a
 * slow body). Every request is recorded with the bytes it was sent.
 */
export class TestUpstream {
  readonly requests: UpstreamRequestRecord[] = []
  private readonly content = new Map<string, { bytes: Buffer; mediaType: string }>()
  private readonly behaviour = new Map<string, UpstreamBehaviour>()
  private readonly answers = new Set<ServerResponse>()
  private server: Server | undefined

  add(digest: string, bytes: Buffer, mediaType = 'application/octet-stream'): void {
    this.content.set(digest, { bytes, mediaType })
  }

  behave(digest: string, behaviour: UpstreamBehaviour): void {
    this.behaviour.set(digest, behaviour)
  }

  /** Requests for a digest (GETs unless told), and the body bytes they were sent. */
  asked(digest: string, method = 'GET'): { count: number; sent: number; ranges: (string | undefined)[] } {
    const matching = this.requests.filter((record) => record.path.endsWith(`/${digest}`) && record.method === method)
    return { count: matching.length, sent: matching.reduce((sum, record) => sum + record.sent, 0), ranges: matching.map((record) => record.range) }
  }

  async start(host: string): Promise<string> {
    this.server = createServer((req, res) => void this.answer(req, res))
    await new Promise<void>((resolve) => this.server!.listen(0, host, () => resolve()))
    return `${host}:${(this.server.address() as { port: number }).port}`
  }

  async stop(): Promise<void> {
    for (const answer of this.answers) answer.destroy()
    this.server?.closeAllConnections()
    await new Promise((resolve) => this.server ? this.server.close(resolve) : resolve(undefined))
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0]!
    const record: UpstreamRequestRecord = { method: req.method ?? '', path, range: req.headers.range, from: req.socket.remoteAddress ?? '', sent: 0 }
    this.requests.push(record)
    if (path === '/v2/') return void res.writeHead(200).end('{}')
    const digest = /\/(?:blobs|manifests)\/(sha256:[0-9a-f]{64})$/.exec(path)?.[1] ?? ''
    const behaviour = this.behaviour.get(digest) ?? {}
    const stored = this.content.get(digest)
    if (behaviour.status) return void res.writeHead(behaviour.status, behaviour.challenge ? { 'www-authenticate': behaviour.challenge } : {}).end()
    if (!stored) return void res.writeHead(404).end()
    const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0)
    const bytes = Buffer.from(stored.bytes)
    if (behaviour.corruptAt !== undefined) bytes[behaviour.corruptAt] ^= 0xff
    const headers = { 'content-type': stored.mediaType, 'content-length': String(bytes.length - from), 'docker-content-digest': digest }
    res.writeHead(from > 0 ? 206 : 200, from > 0 ? { ...headers, 'content-range': `bytes ${from}-${bytes.length - 1}/${bytes.length}` } : headers)
    if (req.method === 'HEAD') return void res.end()
    const cutAt = behaviour.cutAt
    if (cutAt !== undefined) delete behaviour.cutAt
    this.answers.add(res)
    res.once('close', () => this.answers.delete(res))
    for (let at = from; at < bytes.length; at += CHUNK) {
      if (res.destroyed) return
      if (cutAt !== undefined && at >= cutAt) return void res.destroy()
      const chunk = bytes.subarray(at, Math.min(bytes.length, at + CHUNK))
      if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve))
      record.sent += chunk.length
      if (behaviour.bytesPerSecond) await sleep(Math.round((chunk.length / behaviour.bytesPerSecond) * 1000))
    }
    res.end()
  }
}
