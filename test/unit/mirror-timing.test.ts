import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { describe, it } from 'node:test'
import type { BlobInfo } from '../../src/content/provider.js'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { sha256Digest, type Digest } from '../../src/oci/digest.js'
import { METAINFO_PATH } from '../../src/protocol/peer-api.js'
import { MemoryRoutingNetwork } from '../../src/routing/memory.js'
import { LOCAL_LOOKUP_TIMEOUT_MS } from '../../src/mirror/mirror.js'
import { ManualClock } from '../support/clock.js'
import { eventually } from '../support/eventually.js'
import { patternBytes } from '../support/images.js'
import { startRegistryApp, type RunningRegistry, type TestNodeInit } from '../support/registry-app.js'

const MiB = 2 ** 20

/** A holder that answers each request through `answer`, or keeps it waiting (answer returns false); every request is recorded. */
async function fakeHolder(answer: (request: IncomingMessage, response: ServerResponse) => boolean | void) {
  const asked: { line: string; request: IncomingMessage; response: ServerResponse }[] = []
  const server: Server = createServer((request, response) => {
    asked.push({ line: `${request.method} ${request.url?.split('?')[0]}`, request, response })
    answer(request, response)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return {
    asked,
    lines: () => asked.map((item) => item.line),
    address: { host: '127.0.0.1', port: (server.address() as { port: number }).port },
    async close() {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

const serves = (blob: Buffer) => (request: IncomingMessage, response: ServerResponse): void => {
  response.writeHead(200, { 'content-length': String(blob.length) })
  response.end(request.method === 'HEAD' ? undefined : blob)
}

/** Lets the event loop run the work a clock step released (timers on the ManualClock fire synchronously). */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20))

async function withRequester(init: TestNodeInit, content: MemoryContentProvider, run: (requester: RunningRegistry) => Promise<void>): Promise<void> {
  const requester = await startRegistryApp(content, init)
  try {
    await run(requester)
  } finally {
    await requester.stop()
  }
}

describe('the mirror on the injected clock', () => {
  it('a holder that never answers is given up on exactly at the stall timeout: 404, and the request to it cancelled', async () => {
    const clock = new ManualClock()
    const routing = new MemoryRoutingNetwork()
    const silent = await fakeHolder(() => false)
    try {
      await withRequester({ routing, clock, resolveTimeoutMs: 60_000, stallTimeoutMs: 60_000 }, new MemoryContentProvider(), async (requester) => {
        const digest = sha256Digest(Buffer.from('nobody answers for this'))
        routing.router(silent.address).advertise([digest])
        let settled = false
        const answer = fetch(`${requester.url}/v2/x/blobs/${digest}`).finally(() => { settled = true })
        await eventually('the holder asked', () => silent.asked.length > 0, 5_000, 5)
        clock.advance(60_000 - 1)
        await settle()
        assert.equal(settled, false, 'answered before the stall timeout')
        clock.advance(1)
        const response = await answer
        assert.equal(response.status, 404)
        assert.match(await response.text(), /no holder answered for it/)
        await eventually('the request to the holder cancelled', () => silent.asked[0]!.request.destroyed, 5_000, 5)
      })
    } finally {
      await silent.close()
    }
  })

  it('a content store that does not answer is given up on at the local lookup timeout; the peers are asked then', async () => {
    const clock = new ManualClock()
    const routing = new MemoryRoutingNetwork()
    const blob = patternBytes(50_000, 3, 1)
    const holder = await fakeHolder(serves(blob))
    const hanging = new (class extends MemoryContentProvider {
      override stat(): Promise<BlobInfo | undefined> {
        return new Promise(() => {})
      }
    })()
    try {
      await withRequester({ routing, clock }, hanging, async (requester) => {
        const digest = sha256Digest(blob)
        routing.router(holder.address).advertise([digest])
        const answer = fetch(`${requester.url}/v2/x/blobs/${digest}`)
        answer.catch(() => {}) // awaited below, after the clock steps that may fail first
        await settle()
        clock.advance(LOCAL_LOOKUP_TIMEOUT_MS - 1)
        await settle()
        assert.deepEqual(holder.lines(), [], 'the peers were asked before the content store timed out')
        clock.advance(1)
        // Bounded well below the lookup timeout, so only the clock can have moved it on.
        await eventually('the peers asked once the lookup timed out', () => holder.asked.length > 0, LOCAL_LOOKUP_TIMEOUT_MS / 2, 5)
        const response = await answer
        assert.equal(response.status, 200)
        assert.ok(Buffer.from(await response.arrayBuffer()).equals(blob))
      })
    } finally {
      await holder.close()
    }
  })

  it('a swarm route that gives nothing leaves the HTTP fallback its share of the deadline', async () => {
    const clock = new ManualClock()
    const routing = new MemoryRoutingNetwork()
    const blob = patternBytes(2 * MiB, 9, 4)
    const digest: Digest = sha256Digest(blob)
    const heads: ServerResponse[] = []
    // The size is told only when the test says; metainfo never.
    const holder = await fakeHolder((request, response) => {
      if (request.url?.startsWith(METAINFO_PATH)) return false
      if (request.method === 'HEAD') return void heads.push(response)
      serves(blob)(request, response)
    })
    const resolveMs = 100
    const stallMs = 60_000
    try {
      await withRequester({ routing, clock, resolveTimeoutMs: resolveMs, stallTimeoutMs: stallMs, swarmMinSize: MiB }, new MemoryContentProvider(), async (requester) => {
        routing.router(holder.address).advertise([digest])
        const answer = fetch(`${requester.url}/v2/x/blobs/${digest}`)
        answer.catch(() => {}) // awaited below, after the clock steps that may fail first
        await eventually('the size asked', () => heads.length === 1, 5_000, 5)
        const sizeAfterMs = 50_000
        clock.advance(sizeAfterMs)
        heads[0]!.writeHead(200, { 'content-length': String(blob.length) }).end()
        await eventually('the metainfo asked', () => holder.lines().includes(`GET ${METAINFO_PATH}${digest}`), 5_000, 5)
        // The deadline is resolve + 2 stall timeouts; the swarm and its one fallback share what is left.
        const swarmShareMs = Math.floor((resolveMs + 2 * stallMs - sizeAfterMs) / 2)
        clock.advance(swarmShareMs - 1)
        await settle()
        assert.ok(!holder.lines().includes(`GET /v2/x/blobs/${digest}`), 'HTTP was tried before the swarm had its share')
        clock.advance(1)
        await eventually('HTTP tried once the swarm had its share', () => holder.lines().includes(`GET /v2/x/blobs/${digest}`), 5_000, 5)
        const response = await answer
        assert.equal(response.status, 200)
        assert.equal(response.headers.get('shoal-source'), 'peer')
        assert.ok(Buffer.from(await response.arrayBuffer()).equals(blob))
      })
    } finally {
      await holder.close()
    }
  })
})
