import assert from 'node:assert/strict'
import { request, Agent } from 'node:http'
import { connect } from 'node:net'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { blobPath } from '../../src/content/blob-file.js'
import { OciLayoutContentProvider } from '../../src/content/oci-layout.js'
import { sha256Digest } from '../../src/oci/digest.js'
import { buildImage, writeOciLayout } from '../support/images.js'
import { startRegistryApp, type RunningRegistry } from '../support/registry-app.js'

const SECRET = 'TOP-SECRET-MARKER-6c1f'
const ROUNDS = 1500

/** Small seeded PRNG so a failing case can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state ^= state << 13; state >>>= 0
    state ^= state >>> 17
    state ^= state << 5; state >>>= 0
    return state / 2 ** 32
  }
}

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function send(port: number, agent: Agent, method: string, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('latin1') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

function sendRaw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')))
    socket.on('error', reject)
    socket.end(text)
  })
}

function assertOciError(answer: { status: number; body: string }, context: string): void {
  assert.ok(answer.status >= 400 && answer.status < 500, `${context}: status ${answer.status}`)
  const parsed = JSON.parse(answer.body) as { errors: { code: string; message: string }[] }
  assert.ok(typeof parsed.errors[0]?.code === 'string' && parsed.errors[0].message.length > 0, `${context}: ${answer.body}`)
}

describe('registry under malformed input', () => {
  let dir: string
  let registry: RunningRegistry
  let agent: Agent
  const image = buildImage({ registry: 'docker.io', repository: 'library/app', tag: 'v1', layerSizes: [4096] })
  const secretDigest = sha256Digest(SECRET)

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-fuzz-'))
    const layout = join(dir, 'layout')
    await writeOciLayout(layout, [image])
    await writeFile(join(dir, 'secret.txt'), SECRET)
    // A blob path that is a symlink to a file outside the store must never be followed.
    await mkdir(join(blobPath(layout, secretDigest), '..'), { recursive: true })
    await symlink(join(dir, 'secret.txt'), blobPath(layout, secretDigest))
    registry = await startRegistryApp(new OciLayoutContentProvider(layout))
    agent = new Agent({ keepAlive: true, maxSockets: 4 })
  })
  after(async () => {
    agent.destroy()
    await registry.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('never follows a symlink out of the content store', async () => {
    const answer = await send(registry.port, agent, 'GET', `/v2/library/app/blobs/${secretDigest}`, {})
    assert.equal(answer.status, 404)
    assert.ok(!answer.body.includes(SECRET))
  })

  it(`answers ${ROUNDS} random malformed requests with 4xx OCI errors and leaks nothing`, async () => {
    const random = prng(20261122)
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
    const valid = image.layers[0]!.digest
    const names = ['library/app', '..', '../..', '%2e%2e', '%2e%2e%2f%2e%2e', 'a//b', 'A', '-a', 'a-', 'a/../b', '.', 'a%00b', 'a\\b',
      'ü', 'a'.repeat(300), '../../../../etc', 'library/app/../../secret.txt', '']
    const references = [valid, valid.slice(0, -1), valid.toUpperCase(), `${valid}x`, 'sha256:', 'sha256:../../secret.txt', `sha256:${'g'.repeat(64)}`,
      `sha512:${'0'.repeat(64)}`, 'md5:abc', '..', '%2e%2e', 'v1%2f..', 'latest', '-bad', 'x'.repeat(200), `${secretDigest}`, secretDigest.replace('sha256', 'sha256:..')]
    const kinds = ['blobs', 'manifests', 'tags', 'blobs/uploads', '..', '']
    const ranges = ['bytes=0-10', 'bytes=-', 'bytes=10-1', 'bytes=0-1,2-3', 'bytes=99999999999-', 'items=1-2', 'bytes=-0', '🙂', 'bytes=0-0'.repeat(40), '']
    const nsValues = ['docker.io', '..%2f..', 'a b', '%00', 'x'.repeat(300), '']
    let answered = 0
    for (let round = 0; round < ROUNDS; round++) {
      const name = pick(names)
      const reference = pick(references)
      const kind = pick(kinds)
      const ns = pick(nsValues)
      let path = `/v2/${name}/${kind}/${reference}${ns ? `?ns=${ns}` : ''}`.replace(/ /g, '%20')
      if (random() < 0.15) path = `/shoal/v1/pieces/${reference}`
      if (random() < 0.1) path = pick(['/v2/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/v2', '/v2/%', '//v2//', '/v2/?ns=' + '%'.repeat(10), '/debug/../v2/'])
      const headers: Record<string, string> = {}
      const range = pick(ranges)
      if (range) headers['range'] = range
      const method = pick(['GET', 'GET', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])
      let answer: Answer
      try {
        answer = await send(registry.port, agent, method, path, headers)
      } catch (err) {
        // Node's client refuses some paths before sending; those are not the server's answers.
        if ((err as NodeJS.ErrnoException).code === 'ERR_UNESCAPED_CHARACTERS' || (err as Error).name === 'TypeError') continue
        throw err
      }
      answered++
      const context = `round ${round}: ${method} ${path} range=${range}`
      assert.ok(!answer.body.includes(SECRET), `${context} leaked the secret`)
      const legitimate = answer.status === 200 || answer.status === 206
      if (legitimate) {
        assert.ok(path.startsWith('/v2/library/app/') || path === '/v2' || path.startsWith('/v2/?') || path === `/shoal/v1/pieces/${valid}`, `${context}: unexpected success`)
      } else if (method !== 'HEAD') {
        assertOciError(answer, context)
      } else {
        assert.ok(answer.status >= 400 && answer.status < 500, `${context}: status ${answer.status}`)
      }
    }
    assert.ok(answered > ROUNDS * 0.8, `only ${answered} of ${ROUNDS} requests reached the server`)
    const alive = await send(registry.port, agent, 'GET', '/v2/', {})
    assert.equal(alive.status, 200)
  })

  it('answers oversized headers with 431 and an OCI error body', async () => {
    const response = await sendRaw(registry.port, `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`)
    assert.match(response, /^HTTP\/1\.1 431 /)
    assertOciError({ status: 431, body: response.slice(response.indexOf('\r\n\r\n') + 4) }, 'huge header')
  })

  it('answers a malformed request line with 400 and an OCI error body', async () => {
    for (const raw of ['GARBAGE\r\n\r\n', 'GET /v2/ HTTP/1.1\r\nHost: x\r\nBroken header\r\n\r\n', 'GET /v2/ HTTP/9.9\r\n\r\n', '\x00\x01\x02\r\n\r\n']) {
      const response = await sendRaw(registry.port, raw)
      assert.match(response, /^HTTP\/1\.1 400 /, JSON.stringify(raw))
      assertOciError({ status: 400, body: response.slice(response.indexOf('\r\n\r\n') + 4) }, JSON.stringify(raw))
    }
    const alive = await send(registry.port, agent, 'GET', '/v2/', {})
    assert.equal(alive.status, 200)
  })
})
