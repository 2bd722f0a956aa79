import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { MAX_EXCHANGES_PER_PEER, MAX_HEAD_BYTES, RangeAnswerError, RangeClient } from '../../src/net/range-client.js'

const BLOB = randomBytes(3 * 1024 * 1024 + 17)

function listen(server: Server | HttpServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)))
}

/** A raw server that answers every request on a connection with `answer(request)`. */
async function rawServer(answer: (request: string, socket: Socket) => void): Promise<{ port: number; server: Server; connections: () => number }> {
  let connections = 0
  const server = createServer((socket) => {
    connections++
    let text = ''
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end < 0) return
      const request = text.slice(0, end)
      text = text.slice(end + 4)
      answer(request, socket)
    })
    socket.on('error', () => {})
  })
  return { port: await listen(server), server, connections: () => connections }
}

describe('byte ranges read straight into a buffer', () => {
  let http: HttpServer
  let port: number
  let connections = 0
  const requests: string[] = []
  const client = new RangeClient()

  before(async () => {
    http = createHttpServer((req, res) => {
      requests.push(`${req.method} ${req.url} ${req.headers['x-test'] ?? ''} ${req.headers.range ?? ''}`)
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
      if (!range) {
        res.writeHead(404, { 'content-length': '9' }).end('not found')
        return
      }
      const [start, end] = [Number(range[1]), Number(range[2])]
      const body = BLOB.subarray(start, end + 1)
      res.writeHead(206, { 'content-length': String(body.length), 'content-range': `bytes ${start}-${end}/${BLOB.length}`, 'x-signed': 'yes' })
      // In several writes, so the body arrives in several reads.
      for (let at = 0; at < body.length; at += 100_000) res.write(body.subarray(at, at + 100_000))
      res.end()
    })
    http.on('connection', () => connections++)
    port = await listen(http)
  })
  after(() => {
    client.close()
    http.close()
  })

  it('fills the buffer with the range, gives the status and headers, and reuses the connection', async () => {
    for (const [start, length] of [[0, 1024 * 1024], [1024 * 1024, 1024 * 1024], [3 * 1024 * 1024, 17]] as const) {
      const into = Buffer.alloc(length)
      let progress = 0
      const answer = await client.get({ host: '127.0.0.1', port, path: '/pieces/x', headers: { 'x-test': 'a', range: `bytes=${start}-${start + length - 1}` }, into, onBytes: () => progress++ })
      assert.equal(answer.status, 206)
      assert.equal(answer.filled, true)
      assert.equal(answer.header('Content-Range'), `bytes ${start}-${start + length - 1}/${BLOB.length}`)
      assert.equal(answer.header('x-signed'), 'yes')
      assert.ok(into.equals(BLOB.subarray(start, start + length)))
      assert.ok(progress >= 1)
    }
    assert.equal(connections, 1, 'one kept-alive connection served all three')
    assert.equal(requests[0], `GET /pieces/x a bytes=0-${1024 * 1024 - 1}`)
  })

  it('answers another status without filling the buffer, and does not reuse that connection', async () => {
    const before = connections
    const into = Buffer.alloc(10, 1)
    const answer = await client.get({ host: '127.0.0.1', port, path: '/pieces/x', headers: {}, into })
    assert.equal(answer.status, 404)
    assert.equal(answer.filled, false)
    assert.ok(into.equals(Buffer.alloc(10, 1)))
    await client.get({ host: '127.0.0.1', port, path: '/pieces/x', headers: { range: 'bytes=0-9' }, into })
    assert.ok(into.equals(BLOB.subarray(0, 10)))
    assert.ok(connections > before, 'a new connection after an answer that was not read')
  })

  it('a length other than the buffer\'s is not a filled answer', async () => {
    const into = Buffer.alloc(20)
    const answer = await client.get({ host: '127.0.0.1', port, path: '/pieces/x', headers: { range: 'bytes=0-9' }, into })
    assert.equal(answer.status, 206)
    assert.equal(answer.filled, false)
  })

  it('aborts at once with the signal\'s reason, and closes that connection', async () => {
    const silent = await rawServer(() => {})
    const controller = new AbortController()
    const pending = client.get({ host: '127.0.0.1', port: silent.port, path: '/', headers: {}, into: Buffer.alloc(4), signal: controller.signal })
    setTimeout(() => controller.abort(new Error('wire closed')), 20)
    await assert.rejects(pending, /wire closed/)
    silent.server.close()
  })

  it('refuses bad answers with a clear error and keeps working', async () => {
    const cases: [string, string | Buffer, RegExp][] = [
      ['not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n', /not an HTTP\/1\.x answer/],
      ['chunked', 'HTTP/1.1 206 Partial\r\ntransfer-encoding: chunked\r\n\r\n', /chunked/],
      ['bad header', 'HTTP/1.1 206 Partial\r\nno colon here\r\n\r\n', /malformed header/],
      ['head too long', `HTTP/1.1 206 Partial\r\nx: ${'a'.repeat(MAX_HEAD_BYTES)}`, /head longer than/],
      ['cut body', 'HTTP/1.1 206 Partial\r\ncontent-length: 8\r\n\r\nabc', /connection ended after 3 body bytes/],
      ['bytes past the body', 'HTTP/1.1 206 Partial\r\ncontent-length: 4\r\n\r\nabcdefgh', /more bytes than/],
    ]
    for (const [label, text, expected] of cases) {
      const raw = await rawServer((_request, socket) => {
        socket.write(text)
        if (label === 'cut body') socket.end()
      })
      await assert.rejects(client.get({ host: '127.0.0.1', port: raw.port, path: '/', headers: {}, into: Buffer.alloc(4 + (label === 'cut body' ? 4 : 0)) }),
        (err: Error) => err instanceof RangeAnswerError && expected.test(err.message), label)
      raw.server.close()
    }
    const into = Buffer.alloc(5)
    await client.get({ host: '127.0.0.1', port, path: '/pieces/x', headers: { range: 'bytes=5-9' }, into })
    assert.ok(into.equals(BLOB.subarray(5, 10)))
  })

  it('fails a refused connection, and retries once on a new connection when a kept one was closed by the peer', async () => {
    const closed = await rawServer(() => {})
    const free = closed.port
    closed.server.close()
    await new Promise((resolve) => setTimeout(resolve, 10))
    await assert.rejects(client.get({ host: '127.0.0.1', port: free, path: '/', headers: {}, into: Buffer.alloc(1) }), /ECONNREFUSED/)
    const perConnection = new WeakMap<Socket, number>()
    const flaky = await rawServer((_request, socket) => {
      const count = (perConnection.get(socket) ?? 0) + 1
      perConnection.set(socket, count)
      // A kept connection the peer drops as the next request arrives (its idle timeout raced it).
      if (count > 1) return void socket.destroy()
      socket.write('HTTP/1.1 206 Partial\r\ncontent-length: 2\r\n\r\nok')
    })
    const into = Buffer.alloc(2)
    await client.get({ host: '127.0.0.1', port: flaky.port, path: '/', headers: {}, into })
    into.fill(0)
    const answer = await client.get({ host: '127.0.0.1', port: flaky.port, path: '/', headers: {}, into })
    assert.equal(answer.filled, true)
    assert.equal(into.toString(), 'ok')
    assert.equal(flaky.connections(), 2)
    flaky.server.close()
  })

  it('runs at most its share of exchanges with one peer at once; the rest wait, and one waiting can be aborted', async () => {
    const held: Socket[] = []
    const slow = await rawServer((_request, socket) => { held.push(socket) })
    const own = new RangeClient()
    const controller = new AbortController()
    const gets = Array.from({ length: MAX_EXCHANGES_PER_PEER + 3 }, (_, i) =>
      own.get({ host: '127.0.0.1', port: slow.port, path: '/', headers: {}, into: Buffer.alloc(2), ...(i === MAX_EXCHANGES_PER_PEER ? { signal: controller.signal } : {}) }))
    for (let i = 0; i < 100 && held.length < MAX_EXCHANGES_PER_PEER; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(held.length, MAX_EXCHANGES_PER_PEER, 'the others wait')
    controller.abort(new Error('gave up'))
    await assert.rejects(gets[MAX_EXCHANGES_PER_PEER]!, /gave up/)
    const answerAll = async (): Promise<void> => {
      for (let i = 0; i < 100 && gets.length; i++) {
        for (const socket of held.splice(0)) socket.write('HTTP/1.1 206 Partial\r\ncontent-length: 2\r\n\r\nok')
        await new Promise((resolve) => setTimeout(resolve, 10))
        if (held.length === 0 && i > 5) break
      }
    }
    await answerAll()
    const answers = await Promise.all(gets.filter((_, i) => i !== MAX_EXCHANGES_PER_PEER))
    assert.ok(answers.every((answer) => answer.filled))
    assert.equal(slow.connections(), MAX_EXCHANGES_PER_PEER, 'the waiting ones took over kept connections')
    own.close()
    slow.server.close()
  })
})
