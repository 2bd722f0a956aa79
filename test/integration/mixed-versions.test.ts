import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startLoopbackCluster, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { pullBlob } from '../support/faults.js'
import { buildImage, type TestImage } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'
import { metricValue } from '../support/shoal.js'

const MiB = 1024 * 1024

/** Swarm bytes a node moved, by direction and transport (`wire` blocks or `http-pieces`). */
async function peerBytes(node: LoopbackNode, direction: 'up' | 'down', via: 'wire' | 'http-pieces'): Promise<number> {
  const text = await (await fetch(`${node.shoal.metricsUrl}/metrics`)).text()
  return metricValue(text, 'shoal_peer_bytes_total', { direction, via })
}

async function pull(node: LoopbackNode, image: TestImage): Promise<void> {
  const layer = image.layers[0]!
  const result = await pullBlob(node, image.repository, layer.digest)
  assert.equal(result.status, 200)
  assert.equal(result.digest, layer.digest)
}

/**
 * A rolling upgrade mixes nodes that offer whole pieces over HTTP with nodes that do not (an
 * older release, here `--swarm-http-pieces=false`, which neither offers nor asks): they still
 * trade, in 16 KiB blocks over the wire, and two new nodes use whole pieces between them.
 */
describe('nodes with and without whole pieces over HTTP in one swarm', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const fromNew = buildImage({ registry: 'registry.test', repository: 'mixed/from-new', tag: 'v1', layerSizes: [40 * MiB] })
  const fromOld = buildImage({ registry: 'registry.test', repository: 'mixed/from-old', tag: 'v1', layerSizes: [40 * MiB] })
  const fromBoth = buildImage({ registry: 'registry.test', repository: 'mixed/from-both', tag: 'v1', layerSizes: [40 * MiB] })
  const [NEW_HOLDER, OLD_HOLDER, NEW_REQUESTER, OLD_REQUESTER] = [0, 1, 2, 3]

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-mixed-'))
    nodes = await startLoopbackCluster({
      dir, base: 80, contents: [[fromNew, fromBoth], [fromOld, fromBoth], [], []],
      // The new holder's upload is capped so that the old holder's blocks are needed beside its pieces.
      args: (index) => index === OLD_HOLDER || index === OLD_REQUESTER ? ['--swarm-http-pieces=false'] : index === NEW_HOLDER ? ['--upload-limit', '16MiB'] : [],
    })
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it('a new node pulls from an old holder in blocks over the wire', async () => {
    await pull(nodes[NEW_REQUESTER]!, fromOld)
    assert.ok(await peerBytes(nodes[NEW_REQUESTER]!, 'down', 'wire') >= 40 * MiB)
    assert.equal(await peerBytes(nodes[NEW_REQUESTER]!, 'down', 'http-pieces'), 0)
    assert.equal(await peerBytes(nodes[OLD_HOLDER]!, 'up', 'http-pieces'), 0)
  })

  it('an old node pulls from a new holder in blocks over the wire', async () => {
    await pull(nodes[OLD_REQUESTER]!, fromNew)
    assert.ok(await peerBytes(nodes[OLD_REQUESTER]!, 'down', 'wire') >= 40 * MiB)
    assert.equal(await peerBytes(nodes[OLD_REQUESTER]!, 'down', 'http-pieces'), 0)
    assert.equal(await peerBytes(nodes[NEW_HOLDER]!, 'up', 'http-pieces'), 0)
  })

  it('two new nodes trade whole pieces over HTTP, and the old holder still serves blocks beside them', async () => {
    const requester = nodes[NEW_REQUESTER]!
    const counters = async () => ({
      piecesDown: await peerBytes(requester, 'down', 'http-pieces'), blocksDown: await peerBytes(requester, 'down', 'wire'),
      piecesUp: await peerBytes(nodes[NEW_HOLDER]!, 'up', 'http-pieces'), blocksUp: await peerBytes(nodes[OLD_HOLDER]!, 'up', 'wire'),
    })
    const before = await counters()
    await pull(requester, fromBoth)
    const after = await counters()
    for (const key of ['piecesDown', 'blocksDown', 'piecesUp', 'blocksUp'] as const) {
      assert.ok(after[key] > before[key], `${key} did not grow: ${JSON.stringify({ before, after })}`)
    }
  })
})
