/**
 * One 1 GiB pull through a node's mirror endpoint, from 1 and from 3 holders, on loopback,
 * next to a plain download of the same blob from docker-registry (and from a shoal node's own
 * content) and the Node floor (bench/floor.ts, median of several runs). Reports MB/s and CPU
 * seconds per GB of the receiving and the sending side, and each swarm case's ratios to the
 * floor and to docker-registry. The 1-holder keyed pull also runs with the requester on one core.
 * The receiving side's kernel share is reported apart, with what writing the blob to a new file
 * costs this machine's kernel (the requester writes every byte to its download file; in a VM
 * whose host backs guest memory on first touch, that alone can cost several CPU-s per GB).
 * Every measured transfer starts right after a scratch file of twice the blob's size was written
 * and removed, so that the requester, like each floor run, writes its copy (and allocates its
 * piece buffers) in memory just freed.
 *
 *   npm run bench -- throughput [--size-mib 1024] [--floor-runs 5]
 */
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLoopbackCluster, stopCluster, type LoopbackNode } from '../test/support/cluster.js'
import { buildImage, writeOciLayout, type TestImage } from '../test/support/images.js'
import { freePort } from '../test/support/ports.js'
import { removeTestDir } from '../test/support/processes.js'
import { pushImage, startUpstreamRegistry } from '../test/support/upstream.js'
import { blobPath } from '../src/content/blob-file.js'
import { digestHex } from '../src/oci/digest.js'
import { pieceLengthFor } from '../src/swarm/metainfo.js'
import { measureFloor } from './floor.js'
import { round } from './numbers.js'
import { cpuTimes } from './proc.js'
import { pageCacheWriteRows, recyclePageCache } from './page-cache.js'

export interface ThroughputRow {
  case: string
  sources: number
  seconds: number
  mbPerSecond: number
  requesterCpuSecondsPerGb: number
  /** The part of it spent in the kernel. */
  requesterKernelCpuSecondsPerGb?: number
  /** The sending side: the holders, or docker-registry. */
  sourcesCpuSecondsPerGb: number
  /** Requester CPU per GB over the floor client's (target ≤ 1.5). */
  requesterVsFloor?: number
  /** One holder's CPU per GB over the floor server's (target ≤ 2). */
  holderVsFloor?: number
  /** MB/s over docker-registry's with the same client (targets ≥ 1.0 from 3 holders, ≥ 0.8 from 1). */
  speedVsRegistry?: number
}

async function pull(baseUrl: string, image: TestImage): Promise<number> {
  const layer = image.layers[0]!
  const started = performance.now()
  const response = await fetch(`${baseUrl}/v2/${image.repository}/blobs/${layer.digest}?ns=registry.test`)
  if (response.status !== 200) throw new Error(`pull from ${baseUrl} answered ${response.status}: ${await response.text()}`)
  const hash = createHash('sha256')
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) hash.update(chunk)
  if (`sha256:${hash.digest('hex')}` !== layer.digest) throw new Error('pulled bytes do not match the digest')
  return (performance.now() - started) / 1000
}

/** `requester` undefined: the client downloads straight from the sources (docker-registry). */
async function measure(label: string, sources: number[], requester: LoopbackNode | undefined, baseUrl: string, image: TestImage, dir: string): Promise<ThroughputRow> {
  recyclePageCache(dir, 2 * Math.ceil(image.layers[0]!.bytes.length / 1024 / 1024))
  const pids = [...sources, requester?.shoal.process.child.pid ?? 0]
  const times = (): Promise<{ user: number; kernel: number }[]> => Promise.all(pids.map((pid) => (pid ? cpuTimes(pid) : { user: 0, kernel: 0 })))
  const before = await times()
  const seconds = await pull(baseUrl, image)
  const after = await times()
  const gb = image.layers[0]!.bytes.length / 1e9
  const used = after.map((value, i) => value.user + value.kernel - before[i]!.user - before[i]!.kernel)
  const requesterKernel = after[after.length - 1]!.kernel - before[before.length - 1]!.kernel
  return {
    case: label, sources: sources.length, seconds: Number(seconds.toFixed(2)),
    mbPerSecond: Number((image.layers[0]!.bytes.length / 1e6 / seconds).toFixed(1)),
    requesterCpuSecondsPerGb: Number((used[used.length - 1]! / gb).toFixed(2)),
    ...(requester ? { requesterKernelCpuSecondsPerGb: round(requesterKernel / gb) } : {}),
    sourcesCpuSecondsPerGb: Number((used.slice(0, -1).reduce((a, b) => a + b, 0) / gb).toFixed(2)),
  }
}

async function floorRows(dir: string, image: TestImage, runs: number): Promise<{ rows: ThroughputRow[]; client: number; server: number }> {
  const layer = image.layers[0]!
  const file = blobPath(join(dir, 'shared'), layer.digest)
  const init = { file, out: join(dir, 'floor.out'), pieceLength: pieceLengthFor(layer.bytes.length), runs, sha256: digestHex(layer.digest) }
  const rows: ThroughputRow[] = []
  for (const clientCpus of [undefined, '0']) {
    const floor = await measureFloor({ ...init, ...(clientCpus ? { clientCpus } : {}) })
    rows.push({
      case: `Node floor${clientCpus ? ', client on 1 core' : ''} (median of ${floor.runs}; client ${round(floor.clientCpuRange[0])}–${round(floor.clientCpuRange[1])} CPU-s/GB)`,
      sources: 1, seconds: round(floor.seconds), mbPerSecond: round(floor.mbPerSecond, 1),
      requesterCpuSecondsPerGb: round(floor.clientCpuSecondsPerGb), requesterKernelCpuSecondsPerGb: round(floor.clientKernelCpuSecondsPerGb),
      sourcesCpuSecondsPerGb: round(floor.serverCpuSecondsPerGb),
    })
  }
  return { rows, client: rows[0]!.requesterCpuSecondsPerGb, server: rows[0]!.sourcesCpuSecondsPerGb }
}

/** Each swarm row's ratios to the floor (CPU per GB) and to docker-registry (speed). */
function withRatios(rows: ThroughputRow[], floor: { client: number; server: number }, registryMbPerSecond: number): ThroughputRow[] {
  return rows.map((row) => (!row.case.startsWith('swarm') ? row : {
    ...row,
    requesterVsFloor: round(row.requesterCpuSecondsPerGb / floor.client),
    holderVsFloor: round(row.sourcesCpuSecondsPerGb / row.sources / floor.server),
    speedVsRegistry: round(row.mbPerSecond / registryMbPerSecond),
  }))
}

export async function runThroughput(sizeMiB = 1024, floorRuns = 5): Promise<ThroughputRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-throughput-'))
  try {
    const image = buildImage({ registry: 'registry.test', repository: 'bench/big', tag: 'v1', layerSizes: [sizeMiB * 1024 * 1024] })
    await writeOciLayout(join(dir, 'shared'), [image])
    const rows: ThroughputRow[] = await pageCacheWriteRows(dir, sizeMiB)
    const floor = await floorRows(dir, image, floorRuns)
    rows.push(...floor.rows)
    const registry = await startUpstreamRegistry(join(dir, 'registry'), { host: '127.0.0.119', port: await freePort('127.0.0.119') })
    try {
      await pushImage(registry.url, image)
      rows.push(await measure('plain HTTP from docker-registry', [registry.process.child.pid!], undefined, registry.url, image, dir))
    } finally {
      await registry.stop()
    }
    const registryMbPerSecond = rows[rows.length - 1]!.mbPerSecond
    // The authenticated path (cluster key, as installed) next to the open one, in the same run;
    // then the keyed 1-holder pull again with the requester held to one core (taskset).
    const cases = [[1, 'cluster key'], [1, 'open'], [3, 'cluster key'], [3, 'open'], [1, 'cluster key, requester on 1 core']] as const
    for (const [index, [holders, trust]] of cases.entries()) {
      const open = trust === 'open'
      const oneCore = trust.endsWith('1 core')
      const nodes = await startLoopbackCluster({
        dir: join(dir, `run-${index}`), base: 120 + index * 10, contents: [...Array.from({ length: holders }, () => []), []],
        beforeStart: (node, layoutDir) => { if (node < holders) execFileSync('cp', ['-alf', `${join(dir, 'shared')}/.`, layoutDir]) },
        ...(open ? { clusterKey: () => null } : {}),
        ...(oneCore ? { wrap: (node: number) => (node === holders ? ['taskset', '-c', '0'] : undefined) } : {}),
      })
      try {
        await new Promise((resolve) => setTimeout(resolve, 2000 + sizeMiB * 2))
        const pidsOf = (list: LoopbackNode[]): number[] => list.map((node) => node.shoal.process.child.pid!)
        if (holders === 1 && open) rows.push(await measure('plain HTTP from a shoal node\'s own content', pidsOf([nodes[0]!]), undefined, nodes[0]!.shoal.registryUrl, image, dir))
        const requester = nodes[holders]!
        rows.push(await measure(`swarm, ${holders} holder${holders > 1 ? 's' : ''}, ${trust}`, pidsOf(nodes.slice(0, holders)), requester, requester.shoal.registryUrl, image, dir))
      } finally {
        await stopCluster(nodes)
      }
    }
    return withRatios(rows, floor, registryMbPerSecond)
  } finally {
    await removeTestDir(dir)
  }
}
