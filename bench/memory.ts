/**
 * Memory: peak RSS of the daemons while one node pulls four 1 GiB blobs at once through the
 * swarm from two holders (loopback). The chart's memory limit must stay above it.
 *
 *   npm run bench -- memory [--size-mib 1024] [--transfers 4]
 */
import { createHash } from 'node:crypto'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLoopbackCluster, stopCluster, type LoopbackNode } from '../test/support/cluster.js'
import { buildImage, type TestImage } from '../test/support/images.js'
import { removeTestDir } from '../test/support/processes.js'
import { peakRssBytes } from './proc.js'

export interface MemoryRow {
  daemon: string
  transfers: number
  blobMiB: number
  seconds: number
  peakRssMiB: number
}

interface BlobRef {
  repository: string
  digest: string
}

async function pull(node: LoopbackNode, blob: BlobRef): Promise<void> {
  const response = await fetch(`${node.shoal.registryUrl}/v2/${blob.repository}/blobs/${blob.digest}?ns=registry.test`)
  if (response.status !== 200 || !response.body) throw new Error(`pull answered ${response.status}`)
  const hash = createHash('sha256')
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) hash.update(chunk)
  if (`sha256:${hash.digest('hex')}` !== blob.digest) throw new Error('pulled bytes do not match the digest')
}

export async function runMemory(sizeMiB = 1024, transfers = 4): Promise<MemoryRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-memory-'))
  let nodes: LoopbackNode[] = []
  try {
    let images: TestImage[] = Array.from({ length: transfers }, (_, i) => buildImage({ registry: 'registry.test', repository: `bench/mem-${i}`, tag: 'v1', layerSizes: [sizeMiB * 1024 * 1024] }))
    const blobs: BlobRef[] = images.map((image) => ({ repository: image.repository, digest: image.layers[0]!.digest }))
    nodes = await startLoopbackCluster({ dir, base: 220, contents: [images, images, []] })
    images = []
    const requester = nodes[2]!
    const started = performance.now()
    await Promise.all(blobs.map((blob) => pull(requester, blob)))
    const seconds = Number(((performance.now() - started) / 1000).toFixed(1))
    const rows: MemoryRow[] = []
    for (const [index, role] of [[2, 'requester (assembles all of them)'], [0, 'holder 1'], [1, 'holder 2']] as const) {
      rows.push({ daemon: role, transfers, blobMiB: sizeMiB, seconds, peakRssMiB: Math.round((await peakRssBytes(nodes[index]!.shoal.process.child.pid!)) / 2 ** 20) })
    }
    return rows
  } finally {
    await stopCluster(nodes)
    await removeTestDir(dir)
  }
}
