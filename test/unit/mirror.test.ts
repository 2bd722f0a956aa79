import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { METAINFO_PATH, PEER_REQUEST_HEADER } from '../../src/protocol/peer-api.js'
import { OCI_MANIFEST } from '../../src/oci/mediatype.js'
import { MemoryRoutingNetwork } from '../../src/routing/memory.js'
import { MemorySwarmNetwork } from '../../src/swarm/memory.js'
import { sha256Digest } from '../../src/oci/digest.js'
import { buildImage, patternBytes, type TestImage } from '../support/images.js'
import { testClusterKey } from '../support/shoal.js'
import { startRegistryApp, type RunningRegistry, type TestNodeInit } from '../support/registry-app.js'

const MiB = 1024 * 1024

function holding(images: TestImage[], extra: Buffer[] = []): MemoryContentProvider {
  const content = new MemoryContentProvider()
  for (const image of images) {
    for (const item of image.blobs) content.addBlob(item.bytes)
    content.setImage(image.name, { digest: image.target.digest, size: image.target.bytes.length, mediaType: image.target.mediaType })
  }
  for (const bytes of extra) content.addBlob(bytes)
  return content
}

async function body(response: Response): Promise<Buffer> {
  return Buffer.from(await response.arrayBuffer())
}

describe('mirror over in-process nodes', () => {
  const routing = new MemoryRoutingNetwork()
  const swarms = new MemorySwarmNetwork()
  const shared: TestNodeInit = { routing, swarms, swarmMinSize: MiB, stallTimeoutMs: 1500 }
  const image = buildImage({ registry: 'registry.test', repository: 'team/app', tag: 'v1', layerSizes: [3 * MiB, 100_000] })
  const big = image.layers[0]!
  const small = image.layers[1]!
  const nodes: RunningRegistry[] = []
  let holder: RunningRegistry
  let requester: RunningRegistry

  before(async () => {
    holder = await startRegistryApp(holding([image]), shared)
    requester = await startRegistryApp(new MemoryContentProvider(), shared)
    nodes.push(holder, requester)
    holder.router.advertise([...image.blobs.map((item) => item.digest), 'registry.test/team/app:v1'])
  })
  after(async () => {
    for (const node of nodes) await node.stop()
  })

  it('fetches a small blob whole from a holder over HTTP and records where it came from', async () => {
    const response = await fetch(`${requester.url}/v2/team/app/blobs/${small.digest}?ns=registry.test`)
    assert.equal(response.status, 200)
    assert.ok((await body(response)).equals(small.bytes))
    const transfer = requester.ledger.recentTransfers().find((item) => item.digest === small.digest)
    assert.equal(transfer?.role, 'http')
    assert.equal(transfer?.peers.get(`127.0.0.1:${holder.port}`)?.received, small.bytes.length)
  })

  it('serves a range of a small blob fetched from a peer', async () => {
    const response = await fetch(`${requester.url}/v2/team/app/blobs/${small.digest}`, { headers: { range: 'bytes=10-19' } })
    assert.equal(response.status, 206)
    assert.equal(response.headers.get('content-range'), `bytes 10-19/${small.bytes.length}`)
    assert.ok((await body(response)).equals(small.bytes.subarray(10, 20)))
  })

  it('answers HEAD for a blob a peer holds with its size, without fetching it', async () => {
    const response = await fetch(`${requester.url}/v2/team/app/blobs/${big.digest}`, { method: 'HEAD' })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-length'), String(big.bytes.length))
    assert.equal(requester.swarm.downloading(big.digest), undefined, 'a swarm download started')
    const transfers = [...requester.ledger.transfers.values(), ...requester.ledger.recentTransfers()]
    assert.deepEqual(transfers.filter((item) => item.digest === big.digest).map((item) => item.role), [], 'a transfer was recorded')
    assert.equal(holder.ledger.served.get(big.digest), undefined, 'the holder served bytes of it')
  })

  it('assembles a large blob through the swarm, verified', async () => {
    const response = await fetch(`${requester.url}/v2/team/app/blobs/${big.digest}`)
    assert.equal(response.status, 200)
    assert.ok((await body(response)).equals(big.bytes))
    assert.ok(requester.swarm.downloading(big.digest)?.complete)
  })

  it('with --single-source streams a large blob from one holder over HTTP, never the swarm', async () => {
    const single = await startRegistryApp(new MemoryContentProvider(), { ...shared, singleSource: true })
    nodes.push(single)
    const response = await fetch(`${single.url}/v2/team/app/blobs/${big.digest}`)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('shoal-source'), 'peer')
    assert.ok((await body(response)).equals(big.bytes))
    assert.equal(single.swarm.downloading(big.digest), undefined)
    const transfer = single.ledger.recentTransfers().find((item) => item.digest === big.digest)
    assert.equal(transfer?.role, 'http')
  })

  it('does not resolve tags that --registry-filters exclude', async () => {
    const filtered = await startRegistryApp(new MemoryContentProvider(), { ...shared, registryFilters: [/team\/app:v1$/] })
    nodes.push(filtered)
    const response = await fetch(`${filtered.url}/v2/team/app/manifests/v1?ns=registry.test`)
    assert.equal(response.status, 404)
    assert.match(await response.text(), /excluded by --registry-filters/)
  })

  it('resolves a tag and fetches manifests by digest through peers', async () => {
    const byTag = await fetch(`${requester.url}/v2/team/app/manifests/v1?ns=registry.test`)
    assert.equal(byTag.status, 200)
    assert.equal(byTag.headers.get('docker-content-digest'), image.manifest.digest)
    assert.equal(byTag.headers.get('content-type'), OCI_MANIFEST)
    const byDigest = await fetch(`${requester.url}/v2/team/app/manifests/${image.manifest.digest}`)
    assert.ok((await body(byDigest)).equals(image.manifest.bytes))
  })

  it('never forwards a peer request, even for content a peer holds', async () => {
    const response = await fetch(`${requester.url}/v2/team/app/blobs/${small.digest}`, { headers: { [PEER_REQUEST_HEADER]: '1' } })
    assert.equal(response.status, 404)
    const manifest = await fetch(`${requester.url}/v2/team/app/manifests/v1?ns=registry.test`, { headers: { [PEER_REQUEST_HEADER]: '1' } })
    assert.equal(manifest.status, 404)
  })

  it('streams a large blob over HTTP when its holder gives no metainfo; in an open swarm a range of it is then 404', async () => {
    const blob = patternBytes(2 * MiB + 77, 11, 5)
    const digest = sha256Digest(blob)
    const asked: string[] = []
    const holderServer = createServer((request, response) => {
      asked.push(`${request.method} ${request.url?.split('?')[0]} ${request.headers.range ?? ''}`.trim())
      if (request.url?.startsWith(METAINFO_PATH)) response.writeHead(503).end()
      else if (request.method === 'HEAD') response.writeHead(200, { 'content-length': String(blob.length) }).end()
      else response.writeHead(200, { 'content-length': String(blob.length) }).end(blob)
    })
    await new Promise<void>((resolve) => holderServer.listen(0, '127.0.0.1', () => resolve()))
    const other = await startRegistryApp(new MemoryContentProvider(), shared)
    nodes.push(other)
    try {
      routing.router({ host: '127.0.0.1', port: (holderServer.address() as { port: number }).port }).advertise([digest])
      const whole = await fetch(`${other.url}/v2/x/blobs/${digest}`)
      assert.equal(whole.status, 200)
      assert.equal(whole.headers.get('shoal-source'), 'peer')
      assert.ok((await body(whole)).equals(blob))
      assert.ok(asked.includes(`GET ${METAINFO_PATH}${digest}`) && asked.includes(`GET /v2/x/blobs/${digest}`), asked.join(', '))
      assert.equal(other.swarm.downloading(digest), undefined, 'the swarm was used')
      const tail = await fetch(`${other.url}/v2/x/blobs/${digest}`, { headers: { range: `bytes=${MiB}-` } })
      assert.equal(tail.status, 404)
      assert.match(await tail.text(), /open swarm serves a part of a blob only from the swarm/)
    } finally {
      holderServer.closeAllConnections()
      await new Promise((resolve) => holderServer.close(resolve))
    }
  })

  it('in a keyed cluster, serves a range over HTTP from one holder, which sends only that range', async () => {
    const blob = patternBytes(2 * MiB + 77, 13, 7)
    const digest = sha256Digest(blob)
    const keyed = { ...shared, routing: new MemoryRoutingNetwork(), clusterKey: testClusterKey() }
    const keyedHolder = await startRegistryApp(holding([], [blob]), keyed)
    const single = await startRegistryApp(new MemoryContentProvider(), { ...keyed, singleSource: true })
    nodes.push(keyedHolder, single)
    keyedHolder.router.advertise([digest])
    const tail = await fetch(`${single.url}/v2/x/blobs/${digest}`, { headers: { range: `bytes=${MiB}-` } })
    assert.equal(tail.status, 206)
    assert.equal(tail.headers.get('shoal-source'), 'peer')
    assert.equal(tail.headers.get('content-range'), `bytes ${MiB}-${blob.length - 1}/${blob.length}`)
    assert.ok((await body(tail)).equals(blob.subarray(MiB)))
    const served = [...(keyedHolder.ledger.served.get(digest)?.values() ?? [])].reduce((sum, bytes) => sum + bytes, 0)
    assert.equal(served, blob.length - MiB)
  })
})

describe('mirror with holders that misbehave', () => {
  const routing = new MemoryRoutingNetwork()
  const image = buildImage({ registry: 'registry.test', repository: 'team/app', tag: 'v1', layerSizes: [50_000] })
  const layer = image.layers[0]!
  let stalling: Server
  let lying: Server
  let requester: RunningRegistry

  function fakeHolder(onBody: (res: import('node:http').ServerResponse) => void): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-length': String(layer.bytes.length) })
        res.end()
      } else {
        onBody(res)
      }
    })
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
  }

  before(async () => {
    stalling = await fakeHolder((res) => res.writeHead(200, { 'content-length': String(layer.bytes.length) }))
    lying = await fakeHolder((res) => {
      res.writeHead(200, { 'content-length': String(layer.bytes.length) })
      res.end(Buffer.alloc(layer.bytes.length, 7))
    })
    requester = await startRegistryApp(new MemoryContentProvider(), { routing, stallTimeoutMs: 300 })
  })
  after(async () => {
    stalling.closeAllConnections()
    lying.closeAllConnections()
    await new Promise((resolve) => stalling.close(resolve))
    await new Promise((resolve) => lying.close(resolve))
    await requester.stop()
  })

  it('drops a holder that stops sending and one that sends wrong bytes, then answers 404 rather than hang or lie', async () => {
    for (const server of [stalling, lying]) routing.router({ host: '127.0.0.1', port: (server.address() as { port: number }).port }).advertise([layer.digest])
    const response = await fetch(`${requester.url}/v2/team/app/blobs/${layer.digest}`)
    assert.equal(response.status, 404)
    const transfer = requester.ledger.recentTransfers().find((item) => item.digest === layer.digest)
    assert.equal(transfer?.outcome, 'failed')
  })
})
