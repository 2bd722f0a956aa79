import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ClusterKey } from '../../src/net/cluster-key.js'
import { sha256Digest } from '../../src/oci/digest.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { AUTH_HEADER, signAnswer, signRequest } from '../../src/protocol/peer-auth.js'
import { METAINFO_PATH, PEER_REQUEST_HEADER, PIECES_PATH } from '../../src/protocol/peer-api.js'
import { StaticBootstrap } from '../../src/routing/bootstrap.js'
import { DhtRouter } from '../../src/routing/dht.js'
import { startLoopbackCluster, stats, stopCluster, type LoopbackNode, type StatsView } from '../support/cluster.js'
import { eventually } from '../support/eventually.js'
import { MiB } from '../support/faults.js'
import { buildImage } from '../support/images.js'
import { freePort, freeUdpPort } from '../support/ports.js'
import { removeTestDir } from '../support/processes.js'
import { silentLogger } from '../support/registry-app.js'
import { testClusterKey } from '../support/shoal.js'

function servedBytes(view: StatsView, digest: string): number {
  return view.served.find((entry) => entry.digest === digest)?.peers.reduce((sum, peer) => sum + peer.bytes, 0) ?? 0
}

const OTHER_KEY = ClusterKey.parse('z'.repeat(64), 'another cluster\'s key')

/** The peer API of real `shoal registry` processes refuses what the cluster key does not vouch for, both ways. */
describe('peer requests and answers between daemons with a cluster key', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const image = buildImage({ registry: 'registry.test', repository: 'auth/app', tag: 'v1', layerSizes: [2 * MiB] })
  const layer = image.layers[0]!
  const paths = [`/v2/${image.repository}/blobs/${layer.digest}`, `${METAINFO_PATH}${layer.digest}`, `${PIECES_PATH}${layer.digest}`]

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-peer-auth-'))
    nodes = await startLoopbackCluster({ dir, base: 210, contents: [[image], [], []], args: (index) => index === 2 ? ['--single-source'] : [] })
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  const ask = (path: string, headers: Record<string, string>): Promise<Response> =>
    fetch(`${nodes[0]!.shoal.registryUrl}${path}`, { headers: { [PEER_REQUEST_HEADER]: '1', range: `bytes=0-${MiB - 1}`, ...headers } })

  for (const path of paths) {
    it(`${path.replace(layer.digest, '<digest>')}: 401 without a valid signature, 2xx with one, 401 replayed`, async () => {
      const refusals: [string, Record<string, string>, RegExp][] = [
        ['no signature', {}, /no valid Shoal-Auth header/],
        ['garbage', { [AUTH_HEADER]: 'v1 x y z' }, /malformed Shoal-Auth header/],
        ['another cluster\'s key', { [AUTH_HEADER]: signRequest(OTHER_KEY, 'GET', path).header }, /not signed with a key of this cluster/],
        ['signed for another path', { [AUTH_HEADER]: signRequest(testClusterKey(), 'GET', `${path}x`).header }, /not signed with a key of this cluster/],
        ['signed for HEAD', { [AUTH_HEADER]: signRequest(testClusterKey(), 'HEAD', path).header }, /not signed with a key of this cluster/],
      ]
      for (const [what, headers, why] of refusals) {
        const response = await ask(path, headers)
        assert.equal(response.status, 401, what)
        const error = ((await response.json()) as { errors: { code: string; message: string }[] }).errors[0]
        assert.equal(error?.code, 'UNAUTHORIZED', what)
        assert.match(error?.message ?? '', why, what)
      }
      const signed = signRequest(testClusterKey(), 'GET', path).header
      const accepted = await ask(path, { [AUTH_HEADER]: signed })
      assert.ok(accepted.status >= 200 && accepted.status < 300, `premise: a signed request is answered (${accepted.status})`)
      assert.ok(accepted.headers.get(AUTH_HEADER), 'the answer is signed')
      await accepted.arrayBuffer()
      const replayed = await ask(path, { [AUTH_HEADER]: signed })
      assert.equal(replayed.status, 401, 'the same signed request sent again')
    })
  }

  it('a Range is served over HTTP from one holder, which sends only that range', async () => {
    const range = { start: MiB / 2, end: MiB + 1000 }
    const servedBefore = servedBytes(await stats(nodes[0]!), layer.digest)
    const response = await fetch(`${nodes[2]!.shoal.registryUrl}/v2/${image.repository}/blobs/${layer.digest}?ns=registry.test`, { headers: { range: `bytes=${range.start}-${range.end}` } })
    assert.equal(response.status, 206)
    assert.equal(response.headers.get('shoal-source'), 'peer')
    assert.equal(response.headers.get('content-range'), `bytes ${range.start}-${range.end}/${layer.bytes.length}`)
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(layer.bytes.subarray(range.start, range.end + 1)))
    assert.equal(servedBytes(await stats(nodes[0]!), layer.digest) - servedBefore, range.end + 1 - range.start)
  })

  it('an answer without a valid signature is not believed: the requester answers 404 and names the holder', async () => {
    const requester = nodes[1]!
    const host = '127.0.0.219'
    const blob = Buffer.from('a blob only an impostor claims to hold')
    const digest = sha256Digest(blob)
    let signing = false
    const impostor: Server = createServer((request, response) => {
      const headers = { 'content-length': String(blob.length) }
      const nonce = String(request.headers[AUTH_HEADER.toLowerCase()] ?? '').split(' ')[2] ?? ''
      const proof = signing ? signAnswer(testClusterKey(), nonce, 200, (name) => name === 'content-length' ? headers['content-length'] : undefined) : 'v1 AAAA'
      response.writeHead(200, { ...headers, [AUTH_HEADER]: proof })
      response.end(request.method === 'HEAD' ? undefined : blob)
    })
    const port = await freePort(host)
    await new Promise<void>((resolve) => impostor.listen(port, host, () => resolve()))
    // Its DHT records carry the key (a node's disk copied, say); only its HTTP answers cannot.
    const router = new DhtRouter({ bootstrap: new StaticBootstrap([{ host: nodes[0]!.host, port: Number(nodes[0]!.p2p.split(':')[1]) }]), logger: silentLogger, metrics: createMetricsRegistry().metrics },
      { listen: { host, port: await freeUdpPort([host]) }, announcePort: () => port, clusterKey: testClusterKey() })
    try {
      await router.start()
      router.advertise([digest])
      await eventually('the impostor announced', () => router.stats().announcesSent > 0, 10_000)
      const unsigned = await fetch(`${requester.shoal.registryUrl}/v2/x/blobs/${digest}?ns=registry.test`, { method: 'HEAD' })
      assert.equal(unsigned.status, 404)
      const faults = (await stats(requester)).faults.recent
      assert.ok(faults.some((fault) => fault.detail.startsWith(`${host}:${port} `) && fault.detail.includes('answer not signed with the cluster key')), JSON.stringify(faults))
      // The control: the same holder signing its answers is believed (once it is no longer skipped, on a fresh requester).
      signing = true
      await nodes[0]!.shoal.stop()
      const fresh = await nodes[0]!.relaunch()
      const signed = await eventually('a signed answer believed', async () => {
        const response = await fetch(`${fresh.registryUrl}/v2/x/blobs/${digest}?ns=registry.test`, { method: 'HEAD' })
        return response.status === 200 && response
      }, 15_000, 200)
      assert.equal(signed.headers.get('content-length'), String(blob.length))
    } finally {
      await router.stop()
      impostor.closeAllConnections()
      await new Promise((resolve) => impostor.close(resolve))
    }
  })
})
