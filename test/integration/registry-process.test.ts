import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { buildImage, writeOciLayout } from '../support/images.js'
import { freePort } from '../support/ports.js'
import { metricValue, runShoal, startShoal, type ShoalProcess } from '../support/shoal.js'

describe('shoal registry as a process', () => {
  let dir: string
  let shoal: ShoalProcess
  const image = buildImage({ registry: 'registry.test', repository: 'demo/app', tag: 'v1', layerSizes: [2 * 1024 * 1024] })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-proc-'))
    await writeOciLayout(join(dir, 'layout'), [image])
    shoal = await startShoal({
      dir, name: 'shoal', registryAddr: `127.0.0.1:${await freePort()}`, metricsAddr: `127.0.0.1:${await freePort()}`,
      args: ['--content-dir', join(dir, 'layout'), '--data-dir', join(dir, 'data')],
    })
  })
  after(async () => {
    await shoal?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('serves a tag and a blob from its content', async () => {
    const manifest = await fetch(`${shoal.registryUrl}/v2/demo/app/manifests/v1?ns=registry.test`)
    assert.equal(manifest.status, 200)
    assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest)
    const layer = image.layers[0]!
    const blob = await fetch(`${shoal.registryUrl}/v2/demo/app/blobs/${layer.digest}?ns=registry.test`)
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(layer.bytes))
  })

  it('answers probes and exports metrics with process metrics on the metrics port', async () => {
    assert.equal((await fetch(`${shoal.registryUrl}/livez`)).status, 200)
    assert.equal((await fetch(`${shoal.registryUrl}/readyz`)).status, 200)
    const metrics = await (await fetch(`${shoal.metricsUrl}/metrics`)).text()
    assert.ok(metricValue(metrics, 'shoal_mirror_requests_total', { registry: 'registry.test', cache: 'hit' }) >= 2)
    assert.match(metrics, /^process_resident_memory_bytes \d+/m)
    assert.match(metrics, /^shoal_http_request_duration_seconds_bucket\{.*handler="blobs"/m)
  })

  it('stops promptly and cleanly on SIGTERM', async () => {
    const started = Date.now()
    shoal.process.child.kill('SIGTERM')
    const [code] = await once(shoal.process.child, 'exit')
    assert.equal(code, 0)
    assert.ok(Date.now() - started < 5000)
  })

  it('exits with a clear error when its port is taken', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as { port: number }).port
    try {
      const result = await runShoal(['registry', '--content-dir', join(dir, 'layout'), '--registry-addr', `127.0.0.1:${port}`, '--metrics-addr', '127.0.0.1:0'])
      assert.equal(result.code, 1)
      assert.match(result.stderr, /EADDRINUSE/)
    } finally {
      blocker.close()
    }
  })

  it('prints the docs/design.md check value with shoal metainfo', async () => {
    const { writeFile } = await import('node:fs/promises')
    const { patternBytes } = await import('../support/images.js')
    const file = join(dir, 'vector.bin')
    await writeFile(file, patternBytes(3_158_073))
    const result = await runShoal(['metainfo', file])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout, [
      'digest: sha256:fd0e5ca77027c16499d9b2898bfdde0c593c994cb77be3ffe3b8b209ca68760d',
      'size: 3158073',
      'piece length: 262144',
      'pieces: 13',
      'infohash: f75af0e9016c026cd54466f00d1539a1be16062b',
      '',
    ].join('\n'))
    const missing = await runShoal(['metainfo', join(dir, 'absent')])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /shoal metainfo: .*absent/)
  })

  it('refuses bad flags before starting anything', async () => {
    const result = await runShoal(['registry', '--registry-addr', 'nonsense'])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /"nonsense" is not an address/)
    const unknown = await runShoal(['registry', '--no-such-flag'])
    assert.match(unknown.stderr, /unknown option '--no-such-flag'/)
  })
})
