import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DigestVerifier, isDigest, parseDigest, sha256Digest } from '../../src/oci/digest.js'
import { DigestInvalidError, NameInvalidError, RangeInvalidError, TagInvalidError, UnsupportedError } from '../../src/oci/errors.js'
import { DOCKER_MANIFEST, DOCKER_MANIFEST_V1, OCI_INDEX, OCI_MANIFEST, parseManifest } from '../../src/oci/mediatype.js'
import { parseDistributionPath, parseNamespaceParam } from '../../src/oci/paths.js'
import { contentRange, parseRange } from '../../src/oci/range.js'
import { isRepository, isTag, parseImageName } from '../../src/oci/reference.js'

const HEX = 'a'.repeat(64)

describe('digests', () => {
  it('accepts canonical sha256 and sha512 digests', () => {
    assert.equal(parseDigest(`sha256:${HEX}`), `sha256:${HEX}`)
    assert.ok(isDigest(`sha512:${'0'.repeat(128)}`))
  })

  for (const bad of ['', 'sha256:', `sha256:${HEX.toUpperCase()}`, `sha256:${HEX}0`, `md5:${HEX}`, `sha256:${HEX.slice(1)}`,
    `sha256:${HEX}\n`, `sha256:../${HEX.slice(3)}`, `SHA256:${HEX}`, `sha256:${HEX}/..`]) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseDigest(bad), DigestInvalidError)
    })
  }

  it('verifies streamed bytes against the digest', () => {
    const good = new DigestVerifier(sha256Digest('hello world'))
    good.update(Buffer.from('hello '))
    good.update(Buffer.from('world'))
    assert.equal(good.matches(), true)
    const bad = new DigestVerifier(sha256Digest('hello world'))
    bad.update(Buffer.from('hello there'))
    assert.equal(bad.matches(), false)
  })
})

describe('references', () => {
  it('parses containerd image names', () => {
    assert.deepEqual(parseImageName('docker.io/library/nginx:1.27'), { registry: 'docker.io', repository: 'library/nginx', tag: '1.27' })
    assert.deepEqual(parseImageName('127.0.0.1:5000/team/app:v1'), { registry: '127.0.0.1:5000', repository: 'team/app', tag: 'v1' })
    assert.deepEqual(parseImageName(`ghcr.io/a/b@sha256:${HEX}`), { registry: 'ghcr.io', repository: 'a/b', digest: `sha256:${HEX}` })
    assert.deepEqual(parseImageName(`localhost/x:y@sha256:${HEX}`), { registry: 'localhost', repository: 'x', tag: 'y', digest: `sha256:${HEX}` })
  })

  it('refuses names that are not fully qualified references', () => {
    for (const name of [`sha256:${HEX}`, 'nginx:latest', 'library/nginx', 'docker.io/Library/nginx', 'docker.io/a:b:c', 'docker.io/a@sha256:zz', 'docker.io/']) {
      assert.equal(parseImageName(name), undefined, name)
    }
  })

  it('validates repositories and tags by the distribution grammar', () => {
    assert.ok(isRepository('library/nginx'))
    assert.ok(isRepository('a__b/c.d-e/f---g'))
    assert.ok(!isRepository('a..b'))
    assert.ok(!isRepository('../etc'))
    assert.ok(!isRepository('a//b'))
    assert.ok(!isRepository(`${'a'.repeat(256)}`))
    assert.ok(isTag('v1.2.3-rc_1'))
    assert.ok(!isTag('.hidden'))
    assert.ok(!isTag('a'.repeat(129)))
  })
})

describe('distribution paths', () => {
  it('parses the routes shoal serves', () => {
    assert.deepEqual(parseDistributionPath('/v2/'), { kind: 'base' })
    assert.deepEqual(parseDistributionPath('/v2/library/nginx/manifests/latest'), { kind: 'manifest', name: 'library/nginx', reference: { tag: 'latest' } })
    assert.deepEqual(parseDistributionPath(`/v2/a/manifests/sha256:${HEX}`), { kind: 'manifest', name: 'a', reference: { digest: `sha256:${HEX}` } })
    assert.deepEqual(parseDistributionPath(`/v2/a/b/c/blobs/sha256:${HEX}`), { kind: 'blob', name: 'a/b/c', digest: `sha256:${HEX}` })
  })

  it('answers malformed paths with the right OCI error', () => {
    assert.throws(() => parseDistributionPath('/v2/../../etc/manifests/latest'), NameInvalidError)
    assert.throws(() => parseDistributionPath('/v2/%2e%2e/blobs/sha256:' + HEX), NameInvalidError)
    assert.throws(() => parseDistributionPath('/v2/UPPER/manifests/latest'), NameInvalidError)
    assert.throws(() => parseDistributionPath('/v2/a/blobs/latest'), DigestInvalidError)
    assert.throws(() => parseDistributionPath('/v2/a/blobs/sha256:..%2f..%2fetc'), DigestInvalidError)
    assert.throws(() => parseDistributionPath('/v2/a/manifests/sha256:abc'), DigestInvalidError)
    assert.throws(() => parseDistributionPath('/v2/a/manifests/-tag'), TagInvalidError)
    assert.throws(() => parseDistributionPath('/v2/a/tags/list'), UnsupportedError)
    assert.throws(() => parseDistributionPath('/etc/passwd'), UnsupportedError)
    assert.throws(() => parseDistributionPath('/v2/' + 'a/'.repeat(2000) + 'blobs/x'), NameInvalidError)
  })

  it('validates the ns parameter', () => {
    assert.equal(parseNamespaceParam('docker.io'), 'docker.io')
    assert.equal(parseNamespaceParam('10.0.0.9:5000'), '10.0.0.9:5000')
    assert.equal(parseNamespaceParam(undefined), undefined)
    assert.throws(() => parseNamespaceParam(['a', 'b']), NameInvalidError)
    assert.throws(() => parseNamespaceParam('evil/../x'), NameInvalidError)
  })
})

describe('byte ranges', () => {
  const size = 1000
  it('parses single ranges', () => {
    assert.equal(parseRange(undefined, size), undefined)
    assert.deepEqual(parseRange('bytes=0-99', size), { start: 0, end: 99 })
    assert.deepEqual(parseRange('bytes=900-', size), { start: 900, end: 999 })
    assert.deepEqual(parseRange('bytes=-100', size), { start: 900, end: 999 })
    assert.deepEqual(parseRange('bytes=-5000', size), { start: 0, end: 999 })
    assert.deepEqual(parseRange('bytes=10-5000', size), { start: 10, end: 999 })
    assert.deepEqual(parseRange('bytes = 5 - 6', size), { start: 5, end: 6 })
    assert.equal(contentRange({ start: 900, end: 999 }, size), 'bytes 900-999/1000')
  })

  it('refuses malformed, multiple and unsatisfiable ranges with 416', () => {
    for (const header of ['bytes=', 'bytes=-', 'bytes=a-b', 'items=0-1', '0-1', 'bytes=1-2-3', 'bytes=5-1', 'bytes=1000-',
      'bytes=-0', 'bytes=0-1,5-6', 'bytes=99999999999999999-', 'bytes=' + '1'.repeat(300)]) {
      assert.throws(() => parseRange(header, size), (err: unknown) => err instanceof RangeInvalidError && err.status === 416, header)
    }
  })

  it('names the size of the blob in Content-Range when a range is unsatisfiable', () => {
    assert.throws(() => parseRange('bytes=2000-', size), (err: unknown) =>
      err instanceof RangeInvalidError && err.headers['Content-Range'] === 'bytes */1000')
  })

  it('has no satisfiable range in an empty blob', () => {
    assert.throws(() => parseRange('bytes=0-', 0), RangeInvalidError)
  })
})

describe('manifest media types', () => {
  const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value))
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${HEX}`, size: 1 }

  it('uses the declared media type', () => {
    assert.equal(parseManifest(json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }))?.mediaType, OCI_INDEX)
  })

  it('detects manifests written without mediaType', () => {
    assert.equal(parseManifest(json({ schemaVersion: 2, manifests: [layer] }))?.mediaType, OCI_INDEX)
    assert.equal(parseManifest(json({ schemaVersion: 2, config: { ...layer, mediaType: 'application/vnd.oci.image.config.v1+json' }, layers: [layer] }))?.mediaType, OCI_MANIFEST)
    assert.equal(parseManifest(json({ schemaVersion: 2, config: { ...layer, mediaType: 'application/vnd.docker.container.image.v1+json' }, layers: [] }))?.mediaType, DOCKER_MANIFEST)
    assert.equal(parseManifest(json({ schemaVersion: 1, fsLayers: [] }))?.mediaType, DOCKER_MANIFEST_V1)
  })

  it('lists children and blobs', () => {
    const parsed = parseManifest(json({ schemaVersion: 2, config: layer, layers: [layer, { digest: 1 }] }))
    assert.equal(parsed?.blobs.length, 2)
  })

  it('refuses what is not a manifest', () => {
    for (const bytes of [Buffer.alloc(0), Buffer.from('not json'), json([1]), json({ schemaVersion: 2 }), json({ mediaType: 'text/plain' }), json(null), Buffer.from([0xff, 0xfe])]) {
      assert.equal(parseManifest(bytes), undefined)
    }
  })
})
