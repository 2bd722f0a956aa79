import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startLoopbackCluster, stats, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { MiB, pullBlob } from '../support/faults.js'
import { buildImage, type TestImage } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'
import { eventually } from '../support/eventually.js'

const OLD = 'rotation-old-key-0123456789abcdef0123456789'
const NEW = 'rotation-new-key-0123456789abcdef0123456789'

/**
 * A rolling key rotation caught in the middle: one node still has [old], one [new, old], one
 * already [new]. Nodes that share a key pull from each other (over the swarm for the big layer,
 * over HTTP for the small one); the two that share none do not, and answer 404 instead.
 */
describe('cluster key rotation', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const image = (name: string): TestImage => buildImage({ registry: 'registry.test', repository: `rotation/${name}`, tag: 'v1', layerSizes: [40 * MiB, 1 * MiB] })
  // old2 and new2 are only ever asked for by the node that shares no key with their holder.
  const images = { both: image('both'), old: image('old'), new: image('new'), old2: image('old2'), new2: image('new2') }
  // The node with both keys is the bootstrap node, as any node may be.
  const keys = [[NEW, OLD], [OLD], [NEW]]

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-rotation-'))
    nodes = await startLoopbackCluster({ dir, base: 190, contents: [[images.both], [images.old, images.old2], [images.new, images.new2]], clusterKey: (index) => keys[index]! })
    // What each node holds is findable once its announces reached a node that shares its key (a node
    // started last may still be announcing when the first pull starts: that 404 is not what these tests are about).
    for (const node of nodes) {
      await eventually(`${node.host} to have announced what it holds`, async () => {
        const { dht } = await stats(node)
        return dht['announcedKeys'] as number > 0 && dht['announcesSent'] as number >= (dht['announcedKeys'] as number)
      }, 20_000, 100)
    }
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  const pullAll = async (node: LoopbackNode, from: TestImage): Promise<number[]> => {
    const statuses: number[] = []
    for (const layer of from.layers) {
      const pulled = await pullBlob(node, from.repository, layer.digest)
      statuses.push(pulled.status)
      if (pulled.status === 200) assert.equal(pulled.digest, layer.digest)
    }
    return statuses
  }

  it('[old] and [new, old] pull from each other', async () => {
    const [both, old] = nodes as [LoopbackNode, LoopbackNode]
    assert.deepEqual(await pullAll(old, images.both), [200, 200])
    assert.deepEqual(await pullAll(both, images.old), [200, 200])
  })

  it('[new, old] and [new] pull from each other', async () => {
    const [both, , fresh] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode]
    assert.deepEqual(await pullAll(fresh, images.both), [200, 200])
    assert.deepEqual(await pullAll(both, images.new), [200, 200])
  })

  it('[old] and [new] share no key: each answers 404 for what only the other holds, so containerd goes upstream', async () => {
    const [, old, fresh] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode]
    assert.deepEqual(await pullAll(old, images.new2), [404, 404])
    assert.deepEqual(await pullAll(fresh, images.old2), [404, 404])
    // Each found the other (through the node with both keys) and was refused, not merely left unaware.
    for (const [requester, holder] of [[old, fresh], [fresh, old]] as const) {
      const address = holder.shoal.registryUrl.slice('http://'.length)
      const faults = (await stats(requester)).faults.recent
      assert.ok(faults.some((fault) => fault.detail.startsWith(`${address} `) && fault.detail.endsWith('status 401')), `${requester.host}: ${JSON.stringify(faults)}`)
    }
  })
})
