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

/** Wires opened to each of two blobs, in turn. */
const WIRES = [30, 15] as const
/** The holder's caps: the wires past them are refused at once. */
const SWARM_CAP = 25
const NODE_CAP = 35
/** 5 past the first swarm's cap, then 5 past the node's: 25 + 10 kept. */
const REFUSED = 10
const IDLE_S = 4

/**
 * Connections that handshake, say they are interested and never ask for anything cost a holder a
 * descriptor each; in an open swarm anyone can open them. Beyond `--max-wires-per-swarm` and
 * `--max-wires` they are refused at once, and the ones kept are closed after `--peer-idle-timeout`, as a wire with no
 * interest would be.
 */
describe('interested-but-silent wires on an open swarm', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const image = buildImage({ registry: 'registry.test', repository: 'idle/wires', tag: 'v1', layerSizes: [2 * MiB, 2 * MiB] })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-idle-'))
    nodes = await startLoopbackCluster({ dir, base: 220, contents: [[image]], clusterKey: () => null, args: () => ['--peer-idle-timeout', `${IDLE_S}s`, '--max-wires-per-swarm', String(SWARM_CAP), '--max-wires', String(NODE_CAP)] })
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it(`wires past the caps (${SWARM_CAP} a swarm, ${NODE_CAP} the node) are refused at once; those that say interested and never request are closed after the idle timeout; both counted`, async () => {
    const holder = nodes[0]!
    const host = holder.shoal.registryUrl.replace(/^http:\/\//, '').split(':')[0]!
    const wires: RawWire[] = []
    try {
      for (const [index, count] of WIRES.entries()) {
        const target = await wireTarget(holder.shoal.registryUrl, image.layers[index]!.digest)
        const opened = await Promise.all(Array.from({ length: count }, () => RawWire.open(host, target.port, target.infoHash)))
        wires.push(...opened)
        await Promise.all(opened.map((wire) => wire.sayInterested()))
      }
      const opened = Date.now()
      await eventually(`${REFUSED} wires refused`, () => wires.filter((wire) => wire.closed).length >= REFUSED, 10_000, 50)
      assert.equal(wires.filter((wire) => wire.closed).length, REFUSED, 'only the wires past the caps closed before the idle timeout')
      assert.ok(Date.now() - opened < (IDLE_S * 1000) / 2, 'refused at once, not for being idle')
      const refused = (await stats(holder)).faults
      assert.equal(refused.counts['wires-full'], REFUSED)
      for (const cap of [/swarm already has 25 connections/, /node already has 35 connections/]) {
        assert.ok(refused.recent.some((fault) => cap.test(fault.detail)), `${cap}: ${JSON.stringify(refused.recent.slice(-3))}`)
      }
      await eventually('every silent wire closed', () => wires.every((wire) => wire.closed), 30_000, 100)
      assert.ok(Date.now() - opened >= (IDLE_S * 1000) / 2, 'closed for being idle, not at once')
      const { faults } = await stats(holder)
      assert.ok((faults.counts['peer-idle'] ?? 0) >= SWARM_CAP, `peer-idle faults: ${JSON.stringify(faults.counts)}`)
      assert.ok(faults.recent.some((fault) => /interested and unchoked, but asked for nothing/.test(fault.detail)), JSON.stringify(faults.recent.slice(-3)))
    } finally {
      for (const wire of wires) wire.close()
    }
  })
})
