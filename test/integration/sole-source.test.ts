import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startLoopbackCluster, stats, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { eventually } from '../support/eventually.js'
import { alive, freeze, kill, MiB, thaw } from '../support/faults.js'
import { buildImage, type TestImage } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'

/** Longest a pull may take here; a body that neither ends nor is cut by then is a failure of its own. */
const PULL_BOUND_MS = 60_000

interface CutPull {
  status: number
  /** False when the connection was cut before the body ended as HTTP says. */
  clean: boolean
  /** True when the test gave up waiting: the body neither ended nor was cut. */
  hung: boolean
  body: Buffer
}

/** A GET through a node's mirror that keeps what arrived, cut or not; `onBytes` sees the running total. */
async function pullKeeping(node: LoopbackNode, image: TestImage, options: { range?: string; onBytes?: (total: number) => void } = {}): Promise<CutPull> {
  const bound = AbortSignal.timeout(PULL_BOUND_MS)
  const response = await fetch(`${node.shoal.registryUrl}/v2/${image.repository}/blobs/${image.layers[0]!.digest}?ns=registry.test`,
    { headers: options.range ? { range: options.range } : {}, signal: bound })
  const chunks: Buffer[] = []
  let total = 0
  let clean = true
  try {
    for await (const chunk of (response.body ?? []) as AsyncIterable<Uint8Array>) {
      chunks.push(Buffer.from(chunk))
      total += chunk.length
      options.onBytes?.(total)
    }
  } catch {
    clean = false
  }
  return { status: response.status, clean, hung: bound.aborted, body: Buffer.concat(chunks) }
}

/**
 * The only holder a requester knows dies or stalls after bytes flowed: the answer is cut, never
 * completed with wrong or missing bytes, and containerd's retry with Range for the rest
 * succeeds once another holder is there.
 */
describe('a sole source that fails after bytes flowed', () => {
  let dir: string
  let nodes: LoopbackNode[]
  const dies = buildImage({ registry: 'registry.test', repository: 'sole/dies', tag: 'v1', layerSizes: [48 * MiB] })
  const stalls = buildImage({ registry: 'registry.test', repository: 'sole/stalls', tag: 'v1', layerSizes: [48 * MiB] })
  const [DYING, STALLING, SPARE] = [0, 1, 2]

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-sole-'))
    nodes = await startLoopbackCluster({
      dir, base: 200, contents: [[dies], [stalls], [dies, stalls], [], []],
      // Slow holders, so the failure comes mid-body; requesters cut a source silent for 2 s.
      args: (index) => index === DYING || index === STALLING ? ['--upload-limit', '8MiB'] : index > SPARE ? ['--stall-timeout', '2s'] : [],
    })
    // The spare holder is away (its records withdrawn) until the first answer was cut.
    await nodes[SPARE]!.shoal.stop()
  })
  after(async () => {
    for (const node of nodes ?? []) if (alive(node)) thaw(node)
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  for (const [fault, image, holderIndex, requesterIndex] of [['dies', dies, DYING, 3], ['stalls', stalls, STALLING, 4]] as const) {
    it(`the holder ${fault}: the answer is cut with only right bytes, and a Range retry gets the rest from another holder`, async () => {
      const holder = nodes[holderIndex]!
      const requester = nodes[requesterIndex]!
      const layer = image.layers[0]!
      let failed = false
      const first = await pullKeeping(requester, image, {
        onBytes: (total) => {
          if (failed || total < layer.bytes.length / 4) return
          failed = true
          if (fault === 'dies') kill(holder)
          else freeze(holder)
        },
      })
      try {
        assert.ok(failed, 'premise: bytes flowed before the holder failed')
        assert.equal(first.status, 200)
        assert.equal(first.hung, false, `the answer neither ended nor was cut within ${PULL_BOUND_MS} ms`)
        assert.equal(first.clean, false, `the answer ended cleanly after ${first.body.length} of ${layer.bytes.length} bytes`)
        assert.ok(first.body.length < layer.bytes.length, 'every byte arrived')
        assert.ok(first.body.equals(layer.bytes.subarray(0, first.body.length)), 'a byte that is not the blob\'s')
        await nodes[SPARE]!.relaunch()
        const rest = await eventually('a Range retry answered 206 with the rest', async () => {
          const retry = await pullKeeping(requester, image, { range: `bytes=${first.body.length}-` })
          return retry.status === 206 && retry.clean && !retry.hung && retry
        }, 30_000, 500)
        const whole = Buffer.concat([first.body, rest.body])
        assert.equal(`sha256:${createHash('sha256').update(whole).digest('hex')}`, layer.digest)
        const view = await stats(requester)
        const fromSpare = [...view.transfers, ...view.recent].filter((transfer) => transfer.digest === layer.digest)
          .flatMap((transfer) => transfer.peers).filter((peer) => peer.peer.startsWith(`${nodes[SPARE]!.host}:`) && peer.received > 0)
        assert.ok(fromSpare.length > 0, 'the rest came from the other holder')
      } finally {
        if (fault === 'stalls') thaw(holder)
        if (alive(nodes[SPARE]!)) await nodes[SPARE]!.shoal.stop()
      }
    })
  }
})
