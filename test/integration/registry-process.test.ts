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

  it('refuses bad flags before starting anything', async () => {
    const result = await runShoal(['registry', '--registry-addr', 'nonsense'])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /"nonsense" is not an address/)
    const unknown = await runShoal(['registry', '--no-such-flag'])
    assert.match(unknown.stderr, /unknown option '--no-such-flag'/)
  })
})
