import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { OCI_MANIFEST } from '../../src/oci/mediatype.js'
import { upstreamFor, type UpstreamTarget } from '../../src/upstream/hosts.js'
import { UpstreamClient } from '../../src/upstream/registry-client.js'
import { systemClock } from '../../src/util/clock.js'
import { rootTestsUnavailable } from '../support/environment.js'
import { buildImage } from '../support/images.js'
import { freePort } from '../support/ports.js'
import { silentLogger } from '../support/registry-app.js'
import { pushImage, startUpstreamRegistry, type UpstreamRegistry } from '../support/upstream.js'
import { TokenServer } from '../support/token-server.js'
import { UpstreamRefusedError } from '../../src/upstream/tokens.js'

const skip = rootTestsUnavailable(['docker-registry'])

describe('the upstream client against a real registry (docker-registry on loopback)', { skip }, () => {
  const client = new UpstreamClient({ clock: systemClock, logger: silentLogger })
  const image = buildImage({ registry: 'registry.test', repository: 'team/app', tag: 'v1', layerSizes: [3 * 2 ** 20 + 7] })
  let dir: string
  let upstream: UpstreamRegistry
  let target: UpstreamTarget

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-upstream-real-'))
    upstream = await startUpstreamRegistry(join(dir, 'registry'), { host: '127.0.0.1', port: await freePort() })
    await pushImage(upstream.url, image)
    // containerd's own view of the registry: its hosts.toml names the server.
    await mkdir(join(dir, 'certs.d', 'registry.test'), { recursive: true })
    await writeFile(join(dir, 'certs.d', 'registry.test', 'hosts.toml'), `server = "${upstream.url}"\n`)
    target = await upstreamFor('registry.test', join(dir, 'certs.d'))
  })
  after(async () => {
    await client.close()
    await upstream?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  const get = (path: string, headers: Record<string, string> = {}) =>
    client.fetch(target, { method: 'GET', repository: 'team/app', path, headers, signal: AbortSignal.timeout(15_000) })

  it('fetches a blob by digest from the server its hosts.toml names, byte for byte', async () => {
    const layer = image.layers[0]!
    const answer = await get(`/v2/team/app/blobs/${layer.digest}`)
    assert.equal(answer.status, 200)
    const hash = createHash('sha256')
    for await (const chunk of answer.body) hash.update(chunk as Buffer)
    assert.equal(`sha256:${hash.digest('hex')}`, layer.digest)
  })

  it('fetches a manifest by digest and answers the registry\'s 404 for what it lacks', async () => {
    const manifest = await get(`/v2/team/app/manifests/${image.manifest.digest}`, { accept: OCI_MANIFEST })
    assert.equal(manifest.status, 200)
    assert.equal(createHash('sha256').update(Buffer.from(await manifest.body.arrayBuffer())).digest('hex'), image.manifest.digest.slice(7))
    const missing = await get(`/v2/team/app/blobs/sha256:${'0'.repeat(64)}`)
    assert.equal(missing.status, 404)
    await missing.body.dump()
  })
})

describe('the anonymous token flow against docker-registry with auth: token and a token server', { skip: skip || rootTestsUnavailable(['openssl']) }, () => {
  const client = new UpstreamClient({ clock: systemClock, logger: silentLogger })
  const image = buildImage({ registry: 'registry.test', repository: 'team/app', tag: 'v1', layerSizes: [2 * 2 ** 20 + 3] })
  let dir: string
  let upstream: UpstreamRegistry | undefined
  let tokens: TokenServer
  let target: UpstreamTarget

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-upstream-token-'))
    const address = { host: '127.0.0.1', port: await freePort() }
    const open = await startUpstreamRegistry(join(dir, 'registry'), address)
    await pushImage(open.url, image)
    await open.stop()
    tokens = new TokenServer(dir)
    await tokens.start('127.0.0.1')
    upstream = await startUpstreamRegistry(join(dir, 'registry'), address, { extraConfig: tokens.registryAuthConfig('registry.test') })
    await mkdir(join(dir, 'certs.d', 'registry.test'), { recursive: true })
    await writeFile(join(dir, 'certs.d', 'registry.test', 'hosts.toml'), `server = "${upstream.url}"\n`)
    target = await upstreamFor('registry.test', join(dir, 'certs.d'))
  })
  after(async () => {
    await client.close()
    await upstream?.stop()
    await tokens?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  const get = (repository: string, path: string, headers: Record<string, string> = {}) =>
    client.fetch(target, { method: 'GET', repository, path, headers, signal: AbortSignal.timeout(15_000) })

  it('gets an anonymous pull token from the realm, fetches with it, and reuses it until it expires', async () => {
    const layer = image.layers[0]!
    const challenged = await fetch(`${upstream!.url}/v2/team/app/blobs/${layer.digest}`)
    assert.equal(challenged.status, 401, 'premise: the registry wants a token')
    assert.match(challenged.headers.get('www-authenticate') ?? '', /^Bearer realm=/)
    const answer = await get('team/app', `/v2/team/app/blobs/${layer.digest}`)
    assert.equal(answer.status, 200)
    const hash = createHash('sha256')
    for await (const chunk of answer.body) hash.update(chunk as Buffer)
    assert.equal(`sha256:${hash.digest('hex')}`, layer.digest)
    const manifest = await get('team/app', `/v2/team/app/manifests/${image.manifest.digest}`, { accept: OCI_MANIFEST })
    assert.equal(manifest.status, 200)
    await manifest.body.dump()
    assert.deepEqual(tokens.requests, [{ service: 'registry.test', scope: 'repository:team/app:pull', authorization: undefined }], 'one anonymous token request, reused')
  })

  it('says at once that upstream refuses when the realm refuses an anonymous token (a private repository)', async () => {
    tokens.refused.add('private/app')
    await assert.rejects(get('private/app', `/v2/private/app/blobs/${image.layers[0]!.digest}`), UpstreamRefusedError)
  })
})
