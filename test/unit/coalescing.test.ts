import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { MemoryRoutingNetwork } from '../../src/routing/memory.js'
import { MemorySwarmNetwork } from '../../src/swarm/memory.js'
import { eventually } from '../support/eventually.js'
import { buildImage } from '../support/images.js'
import { startRegistryApp, type RunningRegistry } from '../support/registry-app.js'

const MiB = 1024 * 1024
/** Long enough that the requests overlap and hold their stream slots while they wait. */
const LOOKUP_MS = 200
const ABSENT = `sha256:${'ab'.repeat(32)}`

/** Many requests for one digest at once, from one client (containerd's address): shared work, not shed load. */
describe('concurrent requests for one digest', () => {
  const routing = new MemoryRoutingNetwork(LOOKUP_MS)
  const swarms = new MemorySwarmNetwork()
  const image = buildImage({ registry: 'registry.test', repository: 'co/alesce', tag: 'v1', layerSizes: [8 * MiB, 8 * MiB, 8 * MiB] })
  const layer = image.layers[0]!
  let holder: RunningRegistry
  let requester: RunningRegistry

  before(async () => {
    const content = new MemoryContentProvider()
    for (const each of image.layers) content.addBlob(each.bytes)
    holder = await startRegistryApp(content, { routing, swarms, swarmMinSize: MiB })
    requester = await startRegistryApp(new MemoryContentProvider(), { routing, swarms, swarmMinSize: MiB })
    holder.router.advertise(image.layers.map((each) => each.digest))
  })
  after(async () => {
    await requester?.stop()
    await holder?.stop()
  })

  it('100 GETs of a digest nobody holds all get 404, from one lookup', async () => {
    const answers = await Promise.all(Array.from({ length: 100 }, () => fetch(`${requester.url}/v2/co/alesce/blobs/${ABSENT}?ns=registry.test`)
      .then(async (response) => { await response.arrayBuffer(); return response.status })))
    assert.deepEqual([...new Set(answers)], [404], `statuses: ${answers.join(' ')}`)
    assert.equal(requester.router.lookups.get(ABSENT), 1)
  })

  it('50 ranges of a blob a peer holds all get 206 with the right bytes', async () => {
    const ranges = Array.from({ length: 50 }, (_, index) => ({ start: index * 160 * 1024, length: 64 * 1024 + index }))
    const answers = await Promise.all(ranges.map(async ({ start, length }) => {
      const response = await fetch(`${requester.url}/v2/co/alesce/blobs/${layer.digest}?ns=registry.test`, { headers: { range: `bytes=${start}-${start + length - 1}` } })
      return { status: response.status, bytes: Buffer.from(await response.arrayBuffer()), start, length }
    }))
    assert.deepEqual(answers.map((answer) => answer.status).filter((status) => status !== 206), [])
    for (const { bytes, start, length } of answers) assert.ok(bytes.equals(layer.bytes.subarray(start, start + length)), `bytes of ${start}+${length}`)
    assert.equal(requester.router.lookups.get(layer.digest), 1, 'one lookup for all of them')
  })

  it('a second requester of a shared lookup and join gets the blob when the first one is cancelled', async () => {
    const other = image.layers[1]!
    const url = `${requester.url}/v2/co/alesce/blobs/${other.digest}?ns=registry.test`
    const first = new AbortController()
    const cancelled = fetch(url, { signal: first.signal }).then(() => 'answered', (err: Error) => err.name)
    await eventually('the first request looking up holders', () => requester.router.lookups.get(other.digest) === 1, 5_000, 5)
    const second = fetch(url)
    first.abort()
    assert.equal(await cancelled, 'AbortError')
    const response = await second
    assert.equal(response.status, 200)
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(other.bytes))
    assert.equal(requester.router.lookups.get(other.digest), 1, 'the second request used the first one\'s lookup')
  })

  it('a second requester of a shared swarm download gets the blob when the first one is cancelled', async () => {
    const other = image.layers[2]!
    const url = `${requester.url}/v2/co/alesce/blobs/${other.digest}?ns=registry.test`
    const first = new AbortController()
    const cancelled = fetch(url, { signal: first.signal }).then(async (response) => { await response.body?.cancel(); return 'answered' }, (err: Error) => err.name)
    await eventually('the first request\'s swarm download', () => requester.swarm.downloading(other.digest) !== undefined, 5_000, 5)
    const download = requester.swarm.downloading(other.digest)
    const second = fetch(url)
    first.abort()
    await cancelled
    const response = await second
    assert.equal(response.status, 200)
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(other.bytes))
    assert.equal(requester.swarm.downloading(other.digest), download, 'one download for both')
  })
})
