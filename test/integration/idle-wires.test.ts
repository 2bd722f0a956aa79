import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startLoopbackCluster, stats, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { eventually } from '../support/eventually.js'
import { MiB } from '../support/faults.js'
import { buildImage } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'
import { RawWire, wireTarget } from '../support/raw-wire.js'

const WIRES = 40
const IDLE_S = 2

/**
 * Connections that handshake, say they are interested and never ask for anything cost a holder a
 * descriptor each; in an open swarm anyone can open them. They are closed after
 * `--peer-idle-timeout`, as a wire with no interest would be.
 */
describe('interested-but-silent wires on an open swarm', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const image = buildImage({ registry: 'registry.test', repository: 'idle/wires', tag: 'v1', layerSizes: [2 * MiB] })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-idle-'))
    nodes = await startLoopbackCluster({ dir, base: 220, contents: [[image]], clusterKey: () => null, args: () => ['--peer-idle-timeout', `${IDLE_S}s`] })
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it(`${WIRES} wires that say interested and never request are all closed after the idle timeout, and counted`, async () => {
    const holder = nodes[0]!
    const target = await wireTarget(holder.shoal.registryUrl, image.layers[0]!.digest)
    const host = holder.shoal.registryUrl.replace(/^http:\/\//, '').split(':')[0]!
    const wires = await Promise.all(Array.from({ length: WIRES }, () => RawWire.open(host, target.port, target.infoHash)))
    try {
      await Promise.all(wires.map((wire) => wire.sayInterested()))
      const opened = Date.now()
      await eventually('every silent wire closed', () => wires.every((wire) => wire.closed), 30_000, 100)
      assert.ok(Date.now() - opened >= (IDLE_S * 1000) / 2, 'closed for being idle, not at once')
      const { faults } = await stats(holder)
      assert.ok((faults.counts['peer-idle'] ?? 0) >= WIRES, `peer-idle faults: ${JSON.stringify(faults.counts)}`)
      assert.ok(faults.recent.some((fault) => /interested and unchoked, but asked for nothing/.test(fault.detail)), JSON.stringify(faults.recent.slice(-3)))
    } finally {
      for (const wire of wires) wire.close()
    }
  })
})
