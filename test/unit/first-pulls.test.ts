import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { digestHex, sha256Digest } from '../../src/oci/digest.js'
import { OCI_MANIFEST } from '../../src/oci/mediatype.js'
import { FirstPulls } from '../../src/upstream/first-pulls.js'
import { UpstreamSource, UpstreamUnavailableError } from '../../src/upstream/upstream-source.js'
import { UpstreamClient } from '../../src/upstream/registry-client.js'
import { UpstreamRefusedError } from '../../src/upstream/tokens.js'
import { ManualClock } from '../support/clock.js'
import { eventually } from '../support/eventually.js'
import { patternBytes } from '../support/images.js'
import { silentLogger } from '../support/registry-app.js'

const blob = patternBytes(2 * 2 ** 20 + 3, 5, 9)
const digest = sha256Digest(blob)
const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [] }))

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const chunk of stream) parts.push(chunk as Buffer)
  return Buffer.concat(parts)
}

describe('first pulls from upstream, one per digest on a node', () => {
  const clock = new ManualClock()
  const asked: IncomingMessage[] = []
  /** Blob bodies are held until the test releases them, so requests overlap. */
  const held: ServerResponse[] = []
  let server: Server
  let dir: string
  let fetches: FirstPulls
  const client = new UpstreamClient({ clock, logger: silentLogger })
  const pullsFrom = (dataDir: string, maxConcurrent: number): FirstPulls => {
    const upstream = new UpstreamSource({ client }, { registryConfigPath: join(dir, 'certs.d'), maxConcurrent })
    return new FirstPulls({ logger: silentLogger, clock, sources: (pull) => [upstream.forRequest(pull)] }, { dataDir, stallMs: 60_000, lingerMs: 30_000 })
  }
  const request = (path: string, kind: 'blobs' | 'manifests' = 'blobs') => ({ registry: 'registry.test', repository: 'team/app', digest: path as never, kind })
  const release = (): void => {
    for (const response of held.splice(0)) response.end(blob.subarray(1))
  }

  before(async () => {
    server = createServer((req, res) => {
      asked.push(req)
      if (req.url?.includes(digest)) {
        res.writeHead(200, { 'content-length': String(blob.length) })
        res.write(blob.subarray(0, 1))
        return void held.push(res)
      }
      if (req.url?.includes(sha256Digest(manifest))) return void res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': String(manifest.length) }).end(manifest)
      if (req.url?.includes('refused')) return void res.writeHead(401).end()
      res.writeHead(404).end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    dir = await mkdtemp(join(tmpdir(), 'shoal-fetches-'))
    await mkdir(join(dir, 'certs.d', 'registry.test'), { recursive: true })
    await writeFile(join(dir, 'certs.d', 'registry.test', 'hosts.toml'), `server = "http://127.0.0.1:${(server.address() as { port: number }).port}"\n`)
    fetches = pullsFrom(dir, 2)
  })
  after(async () => {
    release()
    await fetches.stop()
    await client.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await rm(dir, { recursive: true, force: true })
  })

  it('asks upstream once for a digest however many ask, and gives each the whole verified blob', async () => {
    const [first, second] = await Promise.all([fetches.open(request(digest)), fetches.open(request(digest))])
    assert.equal(first, second)
    const late = fetches.open(request(digest))
    const readers = [readAll(first.blob.follow()), readAll((await late).blob.follow())]
    release()
    for (const bytes of await Promise.all(readers)) assert.ok(bytes.equals(blob))
    assert.equal(asked.filter((req) => req.url?.includes(digest)).length, 1)
  })

  it('keeps a fetched blob the linger time after its last follower, then removes it; the next ask fetches again', async () => {
    const path = join(dir, 'first-pulls', digestHex(digest))
    assert.ok(existsSync(path))
    clock.advance(30_000)
    await eventually('the fetched blob removed', () => !existsSync(path), 5_000, 5)
    const again = await fetches.open(request(digest))
    release()
    assert.ok((await readAll(again.blob.follow())).equals(blob))
    assert.equal(asked.filter((req) => req.url?.includes(digest)).length, 2)
  })

  it('takes a manifest with the media types containerd accepts', async () => {
    const fetched = await fetches.open(request(sha256Digest(manifest), 'manifests'))
    assert.ok((await readAll(fetched.blob.follow())).equals(manifest))
    assert.match(String(asked.at(-1)!.headers.accept), /application\/vnd\.oci\.image\.manifest\.v1\+json/)
  })

  it('says at once when upstream has nothing, refuses, or this node runs its limit of fetches; nothing is kept of a failure', async () => {
    const absent = sha256Digest('absent')
    await assert.rejects(fetches.open(request(absent)), (err: Error) => err instanceof UpstreamUnavailableError && err.status === 404)
    await assert.rejects(fetches.open(request(absent)), UpstreamUnavailableError)
    assert.equal(asked.filter((req) => req.url?.includes(absent)).length, 2, 'a failure was kept')
    await assert.rejects(fetches.open({ ...request(sha256Digest('x')), repository: 'refused' }), UpstreamRefusedError)
    await assert.rejects(fetches.open(request('sha512:' + 'a'.repeat(128))), UpstreamUnavailableError)
    const single = pullsFrom(join(dir, 'single'), 1)
    try {
      const one = await single.open(request(digest))
      await assert.rejects(single.open(request(sha256Digest(manifest), 'manifests')), /already reads 1 bodies from upstream/)
      release()
      assert.ok((await readAll(one.blob.follow())).equals(blob))
      await eventually('the limit freed once the fetch ended', async () => (await single.open(request(sha256Digest(manifest), 'manifests')).catch(() => undefined)) !== undefined, 5_000, 5)
    } finally {
      await single.stop()
    }
  })
})
