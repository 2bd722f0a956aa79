import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { OCI_INDEX, OCI_MANIFEST } from '../../src/oci/mediatype.js'
import { buildImage, type TestImage } from '../support/images.js'
import { memoryLogger, startRegistryApp, type RunningRegistry } from '../support/registry-app.js'

describe('registry API over local content', () => {
  const content = new MemoryContentProvider()
  const image: TestImage = buildImage({ registry: 'docker.io', repository: 'library/app', tag: 'v1', layerSizes: [300_000, 10], withIndex: true, omitMediaType: true })
  const log = memoryLogger()
  let registry: RunningRegistry
  const layer = image.layers[0]!

  before(async () => {
    for (const item of image.blobs) content.addBlob(item.bytes)
    content.setImage(image.name, { digest: image.target.digest, size: image.target.bytes.length, mediaType: OCI_INDEX })
    registry = await startRegistryApp(content, { logger: log.logger })
  })
  after(() => registry.stop())

  it('answers GET /v2/ with the API version header', async () => {
    const response = await fetch(`${registry.url}/v2/`)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0')
  })

  it('serves a whole blob with digest, length and type', async () => {
    const response = await fetch(`${registry.url}/v2/library/app/blobs/${layer.digest}?ns=docker.io`)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('docker-content-digest'), layer.digest)
    assert.equal(response.headers.get('content-length'), String(layer.bytes.length))
    assert.equal(response.headers.get('content-type'), 'application/octet-stream')
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(layer.bytes))
  })

  it('answers HEAD for a blob with the headers containerd needs and no body', async () => {
    const response = await fetch(`${registry.url}/v2/library/app/blobs/${layer.digest}?ns=docker.io`, { method: 'HEAD' })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('docker-content-digest'), layer.digest)
    assert.equal(response.headers.get('content-length'), String(layer.bytes.length))
    assert.equal(response.headers.get('content-type'), 'application/octet-stream')
    assert.equal((await response.arrayBuffer()).byteLength, 0)
  })

  for (const [header, start, end] of [['bytes=100-199', 100, 199], ['bytes=299000-', 299000, layer.bytes.length - 1], ['bytes=-512', layer.bytes.length - 512, layer.bytes.length - 1]] as const) {
    it(`serves ${header} as 206 with Content-Range`, async () => {
      const response = await fetch(`${registry.url}/v2/library/app/blobs/${layer.digest}`, { headers: { range: header } })
      assert.equal(response.status, 206)
      assert.equal(response.headers.get('content-range'), `bytes ${start}-${end}/${layer.bytes.length}`)
      assert.equal(response.headers.get('content-length'), String(end - start + 1))
      assert.ok(Buffer.from(await response.arrayBuffer()).equals(layer.bytes.subarray(start, end + 1)))
    })
  }

  it('answers an unsatisfiable range with 416 and the size', async () => {
    const response = await fetch(`${registry.url}/v2/library/app/blobs/${layer.digest}`, { headers: { range: `bytes=${layer.bytes.length}-` } })
    assert.equal(response.status, 416)
    assert.equal(response.headers.get('content-range'), `bytes */${layer.bytes.length}`)
    assert.equal(((await response.json()) as { errors: { code: string }[] }).errors[0]?.code, 'RANGE_INVALID')
  })

  it('resolves a tag to the index, detecting the media type the JSON does not declare', async () => {
    for (const method of ['HEAD', 'GET']) {
      const response = await fetch(`${registry.url}/v2/library/app/manifests/v1?ns=docker.io`, { method })
      assert.equal(response.status, 200)
      assert.equal(response.headers.get('content-type'), OCI_INDEX)
      assert.equal(response.headers.get('docker-content-digest'), image.target.digest)
      assert.equal(response.headers.get('content-length'), String(image.target.bytes.length))
      const body = Buffer.from(await response.arrayBuffer())
      assert.ok(method === 'HEAD' ? body.length === 0 : body.equals(image.target.bytes))
    }
  })

  it('serves a manifest by digest', async () => {
    const response = await fetch(`${registry.url}/v2/library/app/manifests/${image.manifest.digest}`)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), OCI_MANIFEST)
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(image.manifest.bytes))
  })

  it('says MANIFEST_UNKNOWN for a layer requested as a manifest, an unknown tag, or a tag without ns', async () => {
    for (const path of [`/v2/library/app/manifests/${layer.digest}`, '/v2/library/app/manifests/v2?ns=docker.io', '/v2/library/app/manifests/v1']) {
      const response = await fetch(registry.url + path)
      assert.equal(response.status, 404, path)
      assert.equal(((await response.json()) as { errors: { code: string }[] }).errors[0]?.code, 'MANIFEST_UNKNOWN')
    }
  })

  it('says BLOB_UNKNOWN for content this node does not have', async () => {
    const response = await fetch(`${registry.url}/v2/library/app/blobs/sha256:${'0'.repeat(64)}?ns=docker.io`)
    assert.equal(response.status, 404)
    assert.equal(response.headers.get('content-type'), 'application/json; charset=utf-8')
    assert.deepEqual(await response.json(), { errors: [{ code: 'BLOB_UNKNOWN', message: 'no node holds it (DHT lookup complete)', detail: { digest: `sha256:${'0'.repeat(64)}` } }] })
  })

  it('refuses writes with 405', async () => {
    const response = await fetch(`${registry.url}/v2/library/app/blobs/uploads/`, { method: 'POST' })
    assert.equal(response.status, 405)
    assert.equal(response.headers.get('allow'), 'GET, HEAD')
    assert.equal(((await response.json()) as { errors: { code: string }[] }).errors[0]?.code, 'UNSUPPORTED')
    for (const method of ['PATCH', 'DELETE']) {
      assert.equal((await fetch(`${registry.url}/v2/library/app/blobs/sha256:${'0'.repeat(64)}`, { method })).status, 405, method)
    }
    const put = await fetch(`${registry.url}/v2/library/app/manifests/v1`, { method: 'PUT', body: '{}' })
    assert.equal(put.status, 405)
    assert.equal(put.headers.get('allow'), 'GET, HEAD')
  })

  it('does not resolve tags when told not to', async () => {
    const strict = await startRegistryApp(content, { resolveTags: false })
    try {
      const response = await fetch(`${strict.url}/v2/library/app/manifests/v1?ns=docker.io`)
      assert.equal(response.status, 404)
      assert.match(((await response.json()) as { errors: { message: string }[] }).errors[0]?.message ?? '', /resolve-tags/)
    } finally {
      await strict.stop()
    }
  })

  it('counts hits and misses per registry and never logs probes', async () => {
    await fetch(`${registry.url}/readyz`)
    await fetch(`${registry.url}/livez`)
    const text = await registry.metrics.registry.getSingleMetricAsString('shoal_mirror_requests_total')
    assert.match(text, /shoal_mirror_requests_total\{registry="docker.io",cache="hit"\} [1-9]/)
    assert.match(text, /shoal_mirror_requests_total\{registry="docker.io",cache="miss"\} [1-9]/)
    assert.ok(log.lines.some((line) => line['msg'] === 'blob' && line['source'] === 'local'))
    assert.ok(!log.lines.some((line) => JSON.stringify(line).includes('readyz') || JSON.stringify(line).includes('livez')))
  })
})
