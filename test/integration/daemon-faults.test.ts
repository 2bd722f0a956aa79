import assert from 'node:assert/strict'
import { copyFile, mkdir, mkdtemp, readdir, symlink } from 'node:fs/promises'
import { connect, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { digestHex } from '../../src/oci/digest.js'
import { freeTcpAndUdpPort, startLoopbackCluster, stats, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { eventually } from '../support/eventually.js'
import { alive, MiB, pullBlob } from '../support/faults.js'
import { buildImage, type TestImage } from '../support/images.js'
import { freePort, freeUdpPort } from '../support/ports.js'
import { removeTestDir } from '../support/processes.js'
import { metricValue, startShoal } from '../support/shoal.js'

interface FaultStats { faults: { counts: Record<string, number>; recent: { kind: string; detail: string }[] }; content: { available: boolean } }

const faultStats = async (node: LoopbackNode): Promise<FaultStats> => (await stats(node)) as unknown as FaultStats
const small = (name: string): TestImage => buildImage({ registry: 'registry.test', repository: `faults/${name}`, tag: 'v1', layerSizes: [8 * MiB] })

/** A raw HTTP exchange: writes `request`, returns what the server sent until it closed, and how long that took. */
function rawExchange(address: string, request: string, timeoutMs: number): Promise<{ text: string; ms: number }> {
  const [host, port] = address.split(':') as [string, string]
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const socket = connect(Number(port), host, () => socket.write(request))
    let text = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { text += chunk })
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(text.slice(0, 200))}`)))
    socket.on('error', reject)
    socket.on('close', () => resolve({ text, ms: performance.now() - started }))
  })
}

describe('the daemon stays up and answers sanely whatever fails', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const images = { metainfo: small('metainfo'), partial: small('partial'), committed: small('committed') }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-daemon-faults-'))
    const held = Object.values(images)
    nodes = await startLoopbackCluster({ dir, base: 130, contents: [held, []],
      args: (index) => index === 1 ? ['--swarm-min-size', '1MiB', '--client-timeout', '2s', '--mirrored-registries', 'http://registry.test'] : [] })
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  const dataDir = (node: LoopbackNode): string => join(dir, `node-${node.index + 1}`, 'data')

  it('disk full when the metainfo is written after a download: the pull succeeds, no .tmp is left, the daemon stays up and says so', async () => {
    const requester = nodes[1]!
    const layer = images.metainfo.layers[0]!
    const metainfoDir = join(dataDir(requester), 'metainfo', 'sha256')
    await mkdir(metainfoDir, { recursive: true })
    // Writing to /dev/full fails with ENOSPC, as a full data dir does.
    await symlink('/dev/full', join(metainfoDir, `${digestHex(layer.digest)}.torrent.${requester.shoal.process.child.pid}.tmp`))
    const pulled = await pullBlob(requester, images.metainfo.repository, layer.digest)
    assert.equal(pulled.status, 200)
    assert.equal(pulled.digest, layer.digest)
    const view = await eventually('the disk error reported in /stats', async () => {
      const current = await faultStats(requester)
      return current.faults.counts['io']! >= 1 && current
    })
    assert.match(view.faults.recent.find((fault) => fault.kind === 'io')!.detail, /ENOSPC/)
    assert.deepEqual((await readdir(metainfoDir)).filter((name) => name.endsWith('.tmp')), [])
    assert.ok(alive(requester))
  })

  it('disk full while a download is written: the partial file is removed and the blob still arrives, over HTTP', async () => {
    const requester = nodes[1]!
    const layer = images.partial.layers[0]!
    const downloads = join(dataDir(requester), 'downloads')
    await mkdir(downloads, { recursive: true })
    const partial = join(downloads, `${digestHex(layer.digest)}.partial`)
    await symlink('/dev/full', partial)
    const before = (await faultStats(requester)).faults.counts['io']!
    const pulled = await pullBlob(requester, images.partial.repository, layer.digest)
    assert.equal(pulled.status, 200)
    assert.equal(pulled.digest, layer.digest)
    await eventually('the partial file removed', async () => !(await readdir(downloads)).includes(`${digestHex(layer.digest)}.partial`))
    assert.ok((await faultStats(requester)).faults.counts['io']! > before)
    assert.ok(alive(requester))
  })

  it('no second full copy: a finished download is removed once the content store has the blob', async () => {
    const [holder, requester] = nodes as [LoopbackNode, LoopbackNode]
    const layer = images.committed.layers[0]!
    const pulled = await pullBlob(requester, images.committed.repository, layer.digest)
    assert.equal(pulled.digest, layer.digest)
    const partial = join(dataDir(requester), 'downloads', `${digestHex(layer.digest)}.partial`)
    const listing = async (): Promise<string[]> => readdir(join(partial, '..')).catch(() => [])
    assert.ok((await listing()).includes(`${digestHex(layer.digest)}.partial`), 'the download is kept while the store lacks the blob')
    // What containerd does when it commits the pulled blob.
    const blobs = join(requester.layoutDir, 'blobs', 'sha256')
    await mkdir(blobs, { recursive: true })
    await copyFile(join(holder.layoutDir, 'blobs', 'sha256', digestHex(layer.digest)), join(blobs, digestHex(layer.digest)))
    await eventually('the download file removed', async () => !(await listing()).includes(`${digestHex(layer.digest)}.partial`), 15_000)
  })

  it('10k requests with distinct ?ns= values make no more than the configured registry and "other" series', async () => {
    const requester = nodes[1]!
    const digest = `sha256:${'0'.repeat(64)}`
    let next = 0
    const worker = async (): Promise<void> => {
      for (let index = next++; index < 10_000; index = next++) {
        const response = await fetch(`${requester.shoal.registryUrl}/v2/x/manifests/${digest}?ns=r${index}.example`, { method: 'HEAD' })
        assert.equal(response.status, 404)
      }
    }
    await Promise.all(Array.from({ length: 32 }, worker))
    const text = await (await fetch(`${requester.shoal.metricsUrl}/metrics`)).text()
    const series = text.split('\n').filter((line) => line.startsWith('shoal_mirror_requests_total{'))
    assert.ok(series.length <= 4, `series: ${series.join(' | ')}`)
    assert.ok(metricValue(text, 'shoal_mirror_requests_total', { registry: 'other' }) >= 10_000)
    assert.ok(text.length < 256 * 1024, `/metrics is ${text.length} bytes`)
  })

  it('CONNECT gets 405 with an OCI error body', async () => {
    const { text } = await rawExchange(nodes[1]!.shoal.registryUrl.slice('http://'.length), 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 5_000)
    assert.match(text, /^HTTP\/1\.1 405 /)
    assert.match(text, /"code":"UNSUPPORTED"/)
  })

  it('headers that never complete get 408 after the client timeout', async () => {
    const { text, ms } = await rawExchange(nodes[1]!.shoal.registryUrl.slice('http://'.length), 'GET /v2/ HTTP/1.1\r\nHost: x\r\n', 10_000)
    assert.match(text, /^HTTP\/1\.1 408 /)
    // Not before the timeout (a timer never fires early); the answer itself shows the server gave up, not the client.
    assert.ok(ms >= 1_900, `answered after ${Math.round(ms)} ms; --client-timeout is 2 s`)
  })
})

describe('containerd unreachable', () => {
  let dir: string
  let hung: Server | undefined

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-no-containerd-'))
  })
  after(async () => {
    hung?.close()
    await removeTestDir(dir)
  })

  async function checkNode(name: string, socket: string): Promise<void> {
    const host = '127.0.0.139'
    const node = await startShoal({
      dir, name, registryAddr: `${host}:${await freePort(host)}`, metricsAddr: `${host}:${await freePort(host)}`, waitReady: false,
      args: ['--containerd-sock', socket, '--verify-containerd-config=false', '--data-dir', join(dir, name),
        '--p2p-addr', `${host}:${await freeTcpAndUdpPort(host, await freeUdpPort([host]))}`],
    })
    try {
      await eventually(`${name} alive`, async () => {
        if (node.process.child.exitCode !== null) throw new Error(`${name} exited with ${node.process.child.exitCode}; see ${node.process.logPath}`)
        return (await fetch(`${node.registryUrl}/livez`).catch(() => undefined))?.status === 200
      })
      await eventually(`${name} not ready`, async () => (await fetch(`${node.registryUrl}/readyz`)).status === 503)
      for (const path of [`/v2/app/blobs/sha256:${'1'.repeat(64)}`, `/v2/app/manifests/sha256:${'2'.repeat(64)}`]) {
        const started = performance.now()
        const response = await fetch(`${node.registryUrl}${path}?ns=registry.test`)
        const ms = performance.now() - started
        assert.ok([404, 503].includes(response.status), `${path}: ${response.status}`)
        assert.ok(ms < 3_000, `${path} answered after ${Math.round(ms)} ms`)
        assert.equal(((await response.json()) as { errors: unknown[] }).errors.length, 1)
      }
      // Two failed checks in a row mark the store down; each can take the 2 s health timeout.
      const view = await eventually(`${name}: content store marked unavailable`, async () => {
        const stats = (await (await fetch(`${node.metricsUrl}/stats`)).json()) as FaultStats
        return stats.content.available ? undefined : stats
      }, 10_000)
      assert.ok(view.faults.counts['content-unavailable']! >= 1)
    } finally {
      await node.stop()
    }
  }

  it('socket missing: blob and manifest requests answer 404/503 at once, /readyz 503', async () => {
    await checkNode('missing', join(dir, 'no-such.sock'))
  })

  it('containerd hung (accepts, never answers): the same', async () => {
    const path = join(dir, 'hung.sock')
    hung = createServer(() => {})
    await new Promise<void>((resolve) => hung!.listen(path, () => resolve()))
    await checkNode('hung', `unix://${path}`)
  })
})
