import assert from 'node:assert/strict'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Measurement } from '../../src/status/measure.js'
import { startLoopbackCluster, stats, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { buildImage } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'
import { runShoal } from '../support/shoal.js'
import { assertStatsSchema, parsePrometheusText } from '../support/stats-schema.js'

const MiB = 1024 * 1024
const image = buildImage({ registry: 'registry.test', repository: 'observe/app', tag: 'v1', layerSizes: [96 * MiB, 2048] })
const layer = image.layers[0]!

function measure(node: LoopbackNode, body: string, method = 'POST'): Promise<Response> {
  return fetch(`${node.shoal.metricsUrl}/debug/measure`, { method, ...(method === 'POST' ? { body } : {}) })
}

describe('what an operator sees of a swarm transfer: /stats, /metrics, /debug, shoal status', () => {
  let dir: string
  let nodes: LoopbackNode[]
  let requester: LoopbackNode
  let measured: Measurement
  const snapshots: Record<string, unknown>[] = []

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-observe-'))
    nodes = await startLoopbackCluster({ dir, base: 90, contents: [[image], [image], []], args: (index) => index < 2 ? ['--upload-limit', '12MiB'] : [] })
    requester = nodes[2]!
    let pulling = true
    const pull = measure(requester, JSON.stringify({ reference: image.name })).finally(() => { pulling = false })
    for (let polls = 0; pulling && polls < 600; polls++) {
      snapshots.push(await (await fetch(`${requester.shoal.metricsUrl}/stats`)).json() as Record<string, unknown>)
      await sleep(100)
    }
    const response = await pull
    assert.equal(response.status, 200, await response.clone().text())
    measured = await response.json() as Measurement
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it('/stats keeps its documented schema throughout the transfer and shows it in progress', () => {
    assert.ok(snapshots.length > 3, `${snapshots.length} snapshots`)
    for (const snapshot of snapshots) assertStatsSchema(snapshot)
    const partial = snapshots.flatMap((snapshot) => snapshot['transfers'] as { digest: string; role: string; progress: number }[])
      .filter((transfer) => transfer.digest === layer.digest && transfer.role === 'download' && transfer.progress > 0 && transfer.progress < 1)
    assert.ok(partial.length > 0, 'the download was seen part-way')
  })

  it('credits every byte of the blob to the peers that supplied it', async () => {
    const view = await stats(requester)
    assertStatsSchema(view as unknown as Record<string, unknown>)
    const download = [...view.transfers, ...view.recent].find((transfer) => transfer.digest === layer.digest && transfer.role === 'download')
    assert.ok(download)
    const peers = download.peers as unknown as { peer: string; verified: number }[]
    assert.equal(peers.reduce((sum, peer) => sum + peer.verified, 0), layer.bytes.length)
    assert.ok(download.pieceSources.every((source) => source >= 0), 'every piece has a source')
    const holders = new Set(nodes.slice(0, 2).map((node) => node.id))
    // Each supplier is named once, by its node id (its wire and registry addresses are one row).
    const suppliers = peers.filter((peer) => peer.verified > 0)
    assert.ok(suppliers.length > 0 && suppliers.every((peer) => holders.has(peer.peer)), JSON.stringify(peers))
    assert.equal(new Set(peers.map((peer) => peer.peer)).size, peers.length, JSON.stringify(peers))
    const mirror = (view as unknown as { mirror: Record<string, { requests: number; bytes: number }> }).mirror
    assert.equal(mirror['swarm']!.bytes, layer.bytes.length)
  })

  it('the measure pull reports each blob with its time and sources', () => {
    assert.equal(measured.bytes, image.manifest.bytes.length + image.config.bytes.length + layer.bytes.length + image.layers[1]!.bytes.length)
    const measuredLayer = measured.blobs.find((blob) => blob.digest === layer.digest)
    assert.ok(measuredLayer)
    assert.equal(measuredLayer.answer, 'swarm')
    assert.equal(Object.values(measuredLayer.sources).reduce((sum, bytes) => sum + bytes, 0), layer.bytes.length)
    assert.ok(measured.blobs.every((blob) => blob.status === 200 && blob.seconds >= 0))
  })

  it('/metrics is Prometheus text with shoal\'s metric names and the transfer counted', async () => {
    const response = await fetch(`${requester.shoal.metricsUrl}/metrics`)
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/)
    const samples = parsePrometheusText(await response.text())
    for (const name of ['shoal_mirror_requests_total', 'shoal_resolve_duration_seconds_bucket', 'shoal_advertised_keys', 'shoal_advertised_images',
      'shoal_advertised_image_digests', 'shoal_http_request_duration_seconds_bucket', 'shoal_http_response_size_bytes_bucket', 'shoal_http_requests_inflight',
      'shoal_peer_bytes_total', 'shoal_swarm_pieces_total', 'shoal_swarm_peers_connected', 'shoal_swarms_active', 'shoal_piece_memory_bytes', 'shoal_metainfo_cache_total',
      'shoal_metainfo_hash_duration_seconds_bucket', 'process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds']) {
      assert.ok(samples.has(name), `${name} is exported`)
    }
    const down = samples.get('shoal_peer_bytes_total')!.filter((sample) => sample.labels.includes('direction="down"') && /via="(wire|http-pieces)"/.test(sample.labels))
    assert.ok(down.reduce((sum, sample) => sum + sample.value, 0) >= layer.bytes.length)
    const hits = samples.get('shoal_mirror_requests_total')!.filter((sample) => sample.labels.includes('cache="hit"'))
    assert.ok(hits.reduce((sum, sample) => sum + sample.value, 0) >= image.blobs.length)
    const verified = samples.get('shoal_swarm_pieces_total')!.find((sample) => sample.labels.includes('result="verified"'))
    assert.ok(verified && verified.value > 0)
  })

  it('shoal status prints the transfer as tables, --json the document, and a clear error when nothing answers', async () => {
    const addr = requester.shoal.metricsUrl.replace('http://', '')
    const table = await runShoal(['status', '--addr', addr])
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, /^TRANSFERS$/m)
    assert.match(table.stdout, new RegExp(`${layer.digest.slice(7, 19)}\\s+download`))
    const view = await stats(requester)
    const suppliers = [...view.transfers, ...view.recent].flatMap((transfer) => transfer.peers).filter((peer) => peer.pieces > 0).map((peer) => peer.peer)
    assert.ok(suppliers.length > 0, 'premise: a holder supplied bytes')
    for (const supplier of suppliers) assert.ok(table.stdout.includes(supplier), `status names holder ${supplier}`)
    const json = await runShoal(['status', '--addr', addr, '--json'])
    assert.equal(json.code, 0, json.stderr)
    assertStatsSchema(JSON.parse(json.stdout) as Record<string, unknown>)
    const unreachable = await runShoal(['status', '--addr', '127.0.0.1:1', '--timeout', '2s'])
    assert.equal(unreachable.code, 1)
    assert.match(unreachable.stderr, /cannot reach http:\/\/127\.0\.0\.1:1\/stats/)
    assert.equal(unreachable.stdout, '')
  })

  it('/debug is one self-contained HTML page', async () => {
    const response = await fetch(`${requester.shoal.metricsUrl}/debug`)
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/)
    const html = await response.text()
    assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//, 'no external assets')
    assert.match(html, /fetch\('stats'/)
  })

  it('rejects bad measure requests with a clear error, and reports an unknown image as an upstream fallback', async () => {
    for (const [body, pattern] of [['not json', /must be JSON/], ['{"reference": 7}', /must be JSON/], ['{"reference": "no-registry"}', /not a fully qualified/],
      [JSON.stringify({ reference: 'x'.repeat(5000) }), /over 4096 bytes/]] as const) {
      const response = await measure(requester, body)
      assert.equal(response.status, 400)
      assert.match(((await response.json()) as { error: string }).error, pattern)
    }
    assert.equal((await measure(requester, '', 'GET')).status, 405)
    const unknown = await measure(requester, JSON.stringify({ reference: 'registry.test/observe/missing:v1' }))
    assert.equal(unknown.status, 200)
    const result = (await unknown.json()) as Measurement
    assert.deepEqual(result.blobs.map((blob) => [blob.status, blob.answer]), [[404, 'upstream-fallback']])
  })

  it('logs one debug line per mirror request and nothing for probes', async () => {
    const lines = (await readFile(requester.shoal.process.logPath, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
    assert.ok(lines.some((line) => line['msg'] === 'blob' && line['digest'] === layer.digest && line['level'] === 20))
    assert.ok(lines.every((line) => !JSON.stringify(line).includes('readyz')), 'probes are not logged')
  })
})
