/**
 * Memory: peak RSS of the daemons while one node pulls four 1 GiB blobs at once through the
 * swarm from two holders (loopback). The chart's memory limit must stay above it. Also each
 * daemon's RSS idle (started, settled, nothing asked yet) and what it is made of: anonymous
 * memory (of which the V8 heap and Buffers outside it, from the daemon's metrics) and
 * file-backed pages (the node binary's code, shared by every process running it).
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
import { peakRssBytes, rssPartsMiB } from './proc.js'

export interface MemoryRow {
  daemon: string
  transfers: number
  blobMiB: number
  seconds: number
  peakRssMiB: number
  idleRssMiB: number
  idleAnonMiB: number
  idleFileMiB: number
  idleHeapUsedMiB: number
  idleExternalMiB: number
}

type IdleMemory = Pick<MemoryRow, 'idleRssMiB' | 'idleAnonMiB' | 'idleFileMiB' | 'idleHeapUsedMiB' | 'idleExternalMiB'>

/** Settling time after start before the idle figures are read (DHT bootstrap, first announces). */
const IDLE_SETTLE_MS = 5_000

async function idleMemory(node: LoopbackNode): Promise<IdleMemory> {
  const parts = await rssPartsMiB(node.shoal.process.child.pid!)
  const metrics = await (await fetch(`${node.shoal.metricsUrl}/metrics`)).text()
  const gauge = (name: string): number => Math.round(Number(new RegExp(`^${name} (\\S+)`, 'm').exec(metrics)?.[1] ?? NaN) / 2 ** 20)
  return { idleRssMiB: parts.rss, idleAnonMiB: parts.anon, idleFileMiB: parts.file, idleHeapUsedMiB: gauge('nodejs_heap_size_used_bytes'), idleExternalMiB: gauge('nodejs_external_memory_bytes') }
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
    await new Promise((resolve) => setTimeout(resolve, IDLE_SETTLE_MS))
    const idle = await Promise.all(nodes.map(idleMemory))
    const requester = nodes[2]!
    const started = performance.now()
    await Promise.all(blobs.map((blob) => pull(requester, blob)))
    const seconds = Number(((performance.now() - started) / 1000).toFixed(1))
    const rows: MemoryRow[] = []
    for (const [index, role] of [[2, 'requester (assembles all of them)'], [0, 'holder 1'], [1, 'holder 2']] as const) {
      rows.push({ daemon: role, transfers, blobMiB: sizeMiB, seconds, peakRssMiB: Math.round((await peakRssBytes(nodes[index]!.shoal.process.child.pid!)) / 2 ** 20), ...idle[index]! })
    }
    return rows
  } finally {
    await stopCluster(nodes)
    await removeTestDir(dir)
  }
}
