/**
 * Where the swarm starts to pay: for blobs of several sizes held by 3 nodes, the time for a
 * 4th node to deliver them through its mirror endpoint from one holder over HTTP
 * (--swarm-min-size above the blob) and through the swarm (below it), first byte and last.
 *
 *   npm run bench -- min-size [--upload-limit 25MiB] [--sizes-mib 4,16,32,64,128]   (upload limit per holder, to model node bandwidth)
 */
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLoopbackCluster, stopCluster, type LoopbackNode } from '../test/support/cluster.js'
import { buildImage, type TestImage } from '../test/support/images.js'
import { removeTestDir } from '../test/support/processes.js'

const MiB = 1024 * 1024
export const SIZES_MIB = [4, 16, 32, 64, 128]
const REPEATS = 3

export interface MinSizeRow {
  sizeMiB: number
  path: 'http (1 holder)' | 'swarm (3 holders)'
  firstByteMs: number
  totalMs: number
  mbPerSecond: number
}

async function timedPull(node: LoopbackNode, image: TestImage): Promise<{ firstByteMs: number; totalMs: number }> {
  const started = performance.now()
  const response = await fetch(`${node.shoal.registryUrl}/v2/${image.repository}/blobs/${image.layers[0]!.digest}?ns=registry.test`)
  if (response.status !== 200) throw new Error(`answered ${response.status}`)
  let firstByteMs = 0
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    if (!firstByteMs && chunk.length) firstByteMs = performance.now() - started
  }
  return { firstByteMs, totalMs: performance.now() - started }
}

export async function runMinSize(uploadLimit?: string, sizesMiB: number[] = SIZES_MIB): Promise<MinSizeRow[]> {
  const rows: MinSizeRow[] = []
  for (const [path, minSize] of [['http (1 holder)', '100GiB'], ['swarm (3 holders)', '1']] as const) {
    const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-minsize-'))
    const images = sizesMiB.flatMap((size) => Array.from({ length: REPEATS }, (_, repeat) =>
      buildImage({ registry: 'registry.test', repository: `bench/s${size}r${repeat}`, tag: 'v1', layerSizes: [size * MiB] })))
    const nodes = await startLoopbackCluster({ dir, base: 160, contents: [images, images, images, []], args: (index) => ['--swarm-min-size', minSize, ...(uploadLimit && index < 3 ? ['--upload-limit', uploadLimit] : [])] })
    try {
      await new Promise((resolve) => setTimeout(resolve, 4000))
      for (const size of sizesMiB) {
        const samples = []
        for (let repeat = 0; repeat < REPEATS; repeat++) samples.push(await timedPull(nodes[3]!, images.find((image) => image.repository === `bench/s${size}r${repeat}`)!))
        const median = (values: number[]): number => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!
        const totalMs = median(samples.map((sample) => sample.totalMs))
        rows.push({ sizeMiB: size, path, firstByteMs: Math.round(median(samples.map((sample) => sample.firstByteMs))), totalMs: Math.round(totalMs),
          mbPerSecond: Number((size * MiB / 1e6 / (totalMs / 1000)).toFixed(1)) })
      }
    } finally {
      await stopCluster(nodes)
      await removeTestDir(dir)
    }
  }
  return rows.sort((a, b) => a.sizeMiB - b.sizeMiB)
}
