import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { MAX_SILENCE_MS } from '../../src/swarm/wire-guard.js'
import { startLoopbackCluster, stats, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { eventually } from '../support/eventually.js'
import { alive, freeze, MiB, pullBlob, sha256, thaw } from '../support/faults.js'
import { buildImage } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'

// Holders upload at 200 Mbit/s, as a node of the test did.
const UPLOAD_LIMIT = '25MiB'

/**
 * Two holders, one frozen (SIGSTOP: sockets stay open, nothing answers) before or during a pull
 * through the swarm. The bound on a faulty pull, against a healthy pull of the same blob
 * measured first on another requester: the frozen holder is dropped after at most
 * MAX_SILENCE_MS without a block; from then on the one remaining holder carries the rest alone,
 * at most twice as long as two did (2 × healthy), plus 5 s of scheduling slack on 2 cores.
 */
describe('a frozen holder costs seconds, not the pull', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const large = buildImage({ registry: 'registry.test', repository: 'faults/large', tag: 'v1', layerSizes: [256 * MiB] })
  const medium = buildImage({ registry: 'registry.test', repository: 'faults/medium', tag: 'v1', layerSizes: [100 * MiB] })
  const healthyMs = new Map<string, number>()
  const bound = (digest: string): number => 2 * healthyMs.get(digest)! + MAX_SILENCE_MS + 5_000

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-frozen-'))
    const held = [large, medium]
    nodes = await startLoopbackCluster({ dir, base: 110, contents: [held, held, [], [], []], args: (index) => index < 2 ? ['--upload-limit', UPLOAD_LIMIT] : [] })
    const baseline = nodes[2]!
    for (const image of held) {
      const layer = image.layers[0]!
      const pulled = await pullBlob(baseline, image.repository, layer.digest)
      assert.equal(pulled.digest, layer.digest, 'healthy pull is byte-exact')
      healthyMs.set(layer.digest, pulled.ms)
    }
    // The baseline requester now holds both blobs: stopped, so the faulty pulls have only the two holders.
    await baseline.shoal.stop()
  })
  after(async () => {
    for (const node of nodes ?? []) if (alive(node)) thaw(node)
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it('a holder frozen at 25% of a 256 MiB pull: one uncut response, and a resumed Range gets 206, never 404', async (t) => {
    const [, frozen, , requester] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode]
    const layer = large.layers[0]!
    const half = Math.floor(layer.bytes.length / 2)
    let resumed: Promise<Awaited<ReturnType<typeof pullBlob>>> | undefined
    try {
      const pulled = await pullBlob(requester, large.repository, layer.digest, {
        onBytes: (total) => {
          if (resumed || total < layer.bytes.length / 4) return
          freeze(frozen)
          // What containerd does after a cut: a new request with Range from an offset, mirror first.
          resumed = pullBlob(requester, large.repository, layer.digest, { range: `bytes=${half}-` })
        },
      })
      assert.equal(pulled.status, 200)
      assert.equal(pulled.digest, layer.digest, 'the one response carries the whole blob, byte-exact')
      t.diagnostic(`faulty pull ${Math.round(pulled.ms)} ms, healthy ${Math.round(healthyMs.get(layer.digest)!)} ms, bound ${bound(layer.digest)} ms`)
      assert.ok(pulled.ms < bound(layer.digest), `pull took ${Math.round(pulled.ms)} ms; bound ${bound(layer.digest)} ms (healthy ${Math.round(healthyMs.get(layer.digest)!)} ms)`)
      const range = await resumed!
      assert.equal(range.status, 206)
      assert.equal(range.digest, sha256(layer.bytes.subarray(half)))
      const faults = (await stats(requester) as unknown as { faults: { counts: Record<string, number> } }).faults.counts
      assert.ok(faults['peer-silent']! >= 1, 'the frozen holder was dropped as silent')
    } finally {
      thaw(frozen)
    }
    await requester.shoal.stop()
  })

  it('a holder frozen before a 100 MB pull at 200 Mbit/s: the pull completes within its bound', async (t) => {
    const [, frozen, , , requester] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode]
    const layer = medium.layers[0]!
    freeze(frozen)
    try {
      const pulled = await pullBlob(requester, medium.repository, layer.digest)
      assert.equal(pulled.status, 200)
      assert.equal(pulled.digest, layer.digest)
      t.diagnostic(`faulty pull ${Math.round(pulled.ms)} ms, healthy ${Math.round(healthyMs.get(layer.digest)!)} ms, bound ${bound(layer.digest)} ms`)
      assert.ok(pulled.ms < bound(layer.digest), `pull took ${Math.round(pulled.ms)} ms; bound ${bound(layer.digest)} ms (healthy ${Math.round(healthyMs.get(layer.digest)!)} ms)`)
    } finally {
      thaw(frozen)
    }
    await eventually('every daemon still up', () => nodes.slice(0, 2).every(alive))
  })
})
