import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startLoopbackCluster, stats, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { eventually } from '../support/eventually.js'
import { DEFAULT_MAX_WIRES_PER_SWARM } from '../../src/swarm/peer-wires.js'
import { alive, fdCount, MiB, pullBlob, rssMiB } from '../support/faults.js'
import { buildImage } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'
import { RawWire, wireTarget } from '../support/raw-wire.js'

/** The goal: under each abuse the daemon stays under this, and keeps serving honest pulls. */
const RSS_LIMIT_MIB = 256
/** Samples a node's RSS every 100 ms while `work` runs; returns the peak, MiB. */
async function peakRss<T>(node: LoopbackNode, work: () => Promise<T>): Promise<{ peak: number; result: T }> {
  let peak = rssMiB(node)
  const timer = setInterval(() => { if (alive(node)) peak = Math.max(peak, rssMiB(node)) }, 100)
  try {
    const result = await work()
    return { peak: Math.max(peak, rssMiB(node)), result }
  } finally {
    clearInterval(timer)
  }
}

interface FaultCounts { faults: { counts: Record<string, number> } }

/**
 * Peers and clients that take without reading, or connect and do nothing. Each abuse has a
 * holder of its own, fresh, so its RSS is what that abuse (and one honest pull) costs. The
 * honest pulls' bound, against a healthy pull of the same blob from a twin holder measured
 * first (in a cluster of its own, stopped before): twice the healthy time plus 3 s (the abuse
 * shares the holder's two cores). The nodes run an open swarm (no cluster key), so the
 * hand-written greedy wires get as far as a peer ever can: what is tested is the bound on
 * what any peer, a node of the cluster included, can make a holder spend.
 */
describe('greedy peers and clients cannot grow the daemon', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const big = buildImage({ registry: 'registry.test', repository: 'greedy/big', tag: 'v1', layerSizes: [256 * MiB] })
  const medium = buildImage({ registry: 'registry.test', repository: 'greedy/medium', tag: 'v1', layerSizes: [64 * MiB] })
  const small = buildImage({ registry: 'registry.test', repository: 'greedy/small', tag: 'v1', layerSizes: [8 * MiB] })
  const healthyMs = new Map<string, number>()
  const bound = (digest: string): number => 2 * healthyMs.get(digest)! + 3_000

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-greedy-'))
    const twin = await startLoopbackCluster({ dir: join(dir, 'twin'), base: 140, contents: [[big, medium], []], clusterKey: () => null })
    try {
      for (const image of [big, medium]) {
        const layer = image.layers[0]!
        const pulled = await pullBlob(twin[1]!, image.repository, layer.digest)
        assert.equal(pulled.digest, layer.digest)
        healthyMs.set(layer.digest, pulled.ms)
      }
    } finally {
      await stopCluster(twin)
    }
    nodes = await startLoopbackCluster({ dir, base: 145, contents: [[big], [medium], [small], [], []], clusterKey: () => null,
      args: (index) => index < 3 ? ['--client-timeout', '3s', '--stall-timeout', '2s', '--peer-idle-timeout', '2s'] : [] })
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it('4 wires ask for every block of a 256 MiB blob and stop reading: dropped, RSS stays bounded, an honest pull keeps its speed', async (t) => {
    const [holder, , , requester] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode]
    const layer = big.layers[0]!
    const target = await wireTarget(holder.shoal.registryUrl, layer.digest)
    const rssBefore = rssMiB(holder)
    const { peak, result: pulled } = await peakRss(holder, async () => {
      const wires = await Promise.all(Array.from({ length: 4 }, () => RawWire.open(holder.host, target.port, target.infoHash)))
      await Promise.all(wires.map((wire) => wire.requestEverythingAndStopReading(layer.bytes.length, target.pieceLength)))
      await eventually('the greedy wires dropped', () => wires.every((wire) => wire.closed), 10_000)
      return pullBlob(requester, big.repository, layer.digest)
    })
    assert.equal(pulled.digest, layer.digest)
    assert.ok(pulled.ms < bound(layer.digest), `honest pull took ${Math.round(pulled.ms)} ms; bound ${bound(layer.digest)} ms`)
    t.diagnostic(`holder RSS ${Math.round(rssBefore)} → peak ${Math.round(peak)} MiB; honest pull ${Math.round(pulled.ms)} ms (healthy ${Math.round(healthyMs.get(layer.digest)!)} ms)`)
    assert.ok(peak < RSS_LIMIT_MIB, `holder peak RSS ${Math.round(peak)} MiB (before ${Math.round(rssBefore)} MiB)`)
    const view = await stats(holder) as unknown as FaultCounts
    assert.ok(view.faults.counts['peer-overrun']! >= 4)
  })

  it('300 HTTP clients GET a 64 MiB blob and never read: capped, closed after the client timeout, RSS bounded, an honest pull keeps its speed', async (t) => {
    const [, holder, , , requester] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode, LoopbackNode]
    const layer = medium.layers[0]!
    const fdsBefore = fdCount(holder)
    const [host, port] = holder.shoal.registryUrl.slice('http://'.length).split(':') as [string, string]
    const sockets: Socket[] = []
    const rssBefore = rssMiB(holder)
    const { peak, result: pulled } = await peakRss(holder, async () => {
      for (let index = 0; index < 300; index++) {
        const socket = connect(Number(port), host)
        socket.on('error', () => {})
        socket.write(`GET /v2/${medium.repository}/blobs/${layer.digest} HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
        socket.pause()
        sockets.push(socket)
      }
      await eventually('300 clients connected', () => sockets.every((socket) => !socket.connecting), 10_000)
      return pullBlob(requester, medium.repository, layer.digest)
    })
    assert.equal(pulled.digest, layer.digest)
    assert.ok(pulled.ms < bound(layer.digest), `honest pull took ${Math.round(pulled.ms)} ms; bound ${bound(layer.digest)} ms`)
    t.diagnostic(`holder RSS ${Math.round(rssBefore)} → peak ${Math.round(peak)} MiB; honest pull ${Math.round(pulled.ms)} ms (healthy ${Math.round(healthyMs.get(layer.digest)!)} ms)`)
    assert.ok(peak < RSS_LIMIT_MIB, `holder peak RSS ${Math.round(peak)} MiB (before ${Math.round(rssBefore)} MiB)`)
    // --client-timeout 3s (bodies: at least --stall-timeout + 1 s): the holder disconnects clients that take no bytes (they, paused, cannot see it).
    await eventually('the holder closed the clients\' sockets and files', () => fdCount(holder) <= fdsBefore + 10, 20_000)
    for (const socket of sockets) socket.destroy()
    assert.ok(alive(holder))
  })

  it('200 wires handshake and sit idle: the swarm keeps at most its cap of them, and closes those after the idle timeout', async () => {
    const [, , holder] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode]
    const layer = small.layers[0]!
    const target = await wireTarget(holder.shoal.registryUrl, layer.digest)
    const fdsBefore = fdCount(holder)
    const wires = await Promise.all(Array.from({ length: 200 }, () => RawWire.open(holder.host, target.port, target.infoHash)))
    await eventually('the holder kept its cap of them', () => wires.filter((wire) => wire.closed).length >= 200 - DEFAULT_MAX_WIRES_PER_SWARM, 10_000)
    assert.ok(fdCount(holder) >= fdsBefore + DEFAULT_MAX_WIRES_PER_SWARM / 2, `descriptors: ${fdsBefore} → ${fdCount(holder)}`)
    // --peer-idle-timeout 2s, swept every second.
    await eventually('every idle wire closed by the holder', () => wires.every((wire) => wire.closed), 15_000)
    await eventually('descriptors back to where they were', () => fdCount(holder) <= fdsBefore + 10, 10_000)
    const view = await stats(holder) as unknown as FaultCounts
    assert.ok(view.faults.counts['peer-idle']! >= DEFAULT_MAX_WIRES_PER_SWARM / 2, JSON.stringify(view.faults.counts))
    assert.ok(view.faults.counts['wires-full']! >= 200 - DEFAULT_MAX_WIRES_PER_SWARM - 1, JSON.stringify(view.faults.counts))
  })
})
