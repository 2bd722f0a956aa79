import assert from 'node:assert/strict'
import { chmod, chown, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { freePort, freeUdpPort } from '../support/ports.js'
import { removeTestDir } from '../support/processes.js'
import { runShoal, startShoal, type ShoalProcess } from '../support/shoal.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { EMPTY_TABLE_RETRY_MS } from '../../src/routing/dht.js'
import { eventually } from '../support/eventually.js'
import { buildImage, writeOciLayout } from '../support/images.js'

describe('readiness follows the DHT routing table', () => {
  let dir: string
  const started: ShoalProcess[] = []
  const lone = '127.0.0.111'
  const joiner = '127.0.0.112'

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-ready-'))
  })
  after(async () => {
    for (const shoal of started) await shoal.stop()
    await removeTestDir(dir)
  })

  it('is not ready while its bootstrap peer does not answer, and is once it does', async () => {
    const loneDht = await freeUdpPort([lone])
    const node = await startShoal({
      dir, name: 'joiner', waitReady: false,
      registryAddr: `${joiner}:${await freePort(joiner)}`, metricsAddr: `${joiner}:${await freePort(joiner)}`,
      args: ['--content-dir', join(dir, 'empty'), '--data-dir', join(dir, 'joiner'), '--p2p-addr', `${joiner}:${await freeUdpPort([joiner])}`,
        '--static-bootstrap-peers', `${lone}:${loneDht}`],
    })
    started.push(node)
    await eventually('joiner to listen', async () => (await fetch(`${node.registryUrl}/livez`)).ok)
    // Not ready through more than one bootstrap retry (EMPTY_TABLE_RETRY_MS) while its only peer is silent.
    for (let probe = 0; probe < 15; probe++) {
      assert.equal((await fetch(`${node.registryUrl}/readyz`)).status, 503)
      await sleep(EMPTY_TABLE_RETRY_MS / 10)
    }

    const first = await startShoal({
      dir, name: 'lone', registryAddr: `${lone}:${await freePort(lone)}`, metricsAddr: `${lone}:${await freePort(lone)}`,
      args: ['--content-dir', join(dir, 'empty'), '--data-dir', join(dir, 'lone'), '--p2p-addr', `${lone}:${loneDht}`],
    })
    started.push(first)
    assert.equal((await fetch(`${first.registryUrl}/readyz`)).status, 200, 'a node without bootstrap peers is alone, so ready')
    await eventually('joiner to become ready', async () => (await fetch(`${node.registryUrl}/readyz`)).status === 200, 10_000)
  })

  it('refuses --bootstrap-kind dns without a domain', async () => {
    const result = await runShoal(['registry', '--bootstrap-kind', 'dns', '--content-dir', dir, '--registry-addr', '127.0.0.1:0', '--metrics-addr', '127.0.0.1:0'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /--bootstrap-kind dns needs --dns-bootstrap-domain/)
  })
})

describe('readiness follows whether the blob files can be read', () => {
  let dir: string
  let node: ShoalProcess | undefined

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-unreadable-'))
  })
  after(async () => {
    await node?.stop()
    await chmod(join(dir, 'layout', 'blobs', 'sha256'), 0o755).catch(() => {})
    await removeTestDir(dir)
  })

  it('is not ready while the content store cannot be read, says why, and is ready and serves once it can', async () => {
    const layout = join(dir, 'layout')
    const image = buildImage({ registry: 'docker.io', repository: 'library/private', tag: 'v1', layerSizes: [4096] })
    await writeOciLayout(layout, [image])
    const blobs = join(layout, 'blobs', 'sha256')
    const unreadable = await makeUnreadable(blobs)
    node = await startShoal({
      dir, name: 'reader', waitReady: false, wrap: unreadable.wrap,
      registryAddr: `127.0.0.1:${await freePort()}`, metricsAddr: `127.0.0.1:${await freePort()}`,
      args: ['--content-dir', layout, '--data-dir', join(dir, 'data'), '--p2p-addr', `127.0.0.1:${await freeUdpPort(['127.0.0.1'])}`],
    })
    const blobUrl = `${node.registryUrl}/v2/library/private/blobs/${image.layers[0]!.digest}?ns=docker.io`
    await eventually('listening', async () => (await fetch(`${node!.registryUrl}/livez`)).ok)
    assert.notEqual((await fetch(blobUrl)).status, 200, 'the premise: this process cannot read the blob')
    await eventually('not ready', async () => (await fetch(`${node!.registryUrl}/readyz`)).status === 503, 15_000)
    const content = (await (await fetch(`${node.metricsUrl}/stats`)).json() as { content: { available: boolean; error: string | null } }).content
    assert.equal(content.available, false)
    assert.match(content.error ?? '', new RegExp(`cannot read the content store at ${blobs} \\(EACCES\\)`))

    await unreadable.restore()
    await eventually('ready once the files can be read', async () => (await fetch(`${node!.registryUrl}/readyz`)).status === 200, 15_000)
    const served = await fetch(blobUrl)
    assert.equal(served.status, 200)
    assert.ok(Buffer.from(await served.arrayBuffer()).equals(image.layers[0]!.bytes))
  })
})

/**
 * Makes `path` unreadable to the shoal process about to start. Not root: mode 000. Root reads
 * everything, so the directory goes to another user (0700) and shoal runs as root without the
 * capabilities that bypass file modes, as the chart runs it (capabilities drop ALL).
 */
async function makeUnreadable(path: string): Promise<{ wrap: string[]; restore(): Promise<void> }> {
  if (process.getuid?.() !== 0) {
    await chmod(path, 0o000)
    return { wrap: [], restore: () => chmod(path, 0o755) }
  }
  await chown(path, 65534, 65534)
  await chmod(path, 0o700)
  return { wrap: ['setpriv', '--bounding-set=-all', '--inh-caps=-all', '--'], restore: () => chown(path, 0, 0) }
}
