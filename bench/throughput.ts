/**
 * One 1 GiB pull through a node's mirror endpoint, from 1 and from 3 holders, on loopback,
 * next to a plain download of the same blob from docker-registry (and from a shoal node's own
 * content). Reports MB/s and CPU seconds per GB of the receiving and the sending side.
 *
 *   npm run bench -- throughput [--size-mib 1024]
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
import { cpuSeconds } from './proc.js'

export interface ThroughputRow {
  case: string
  sources: number
  seconds: number
  mbPerSecond: number
  requesterCpuSecondsPerGb: number
  /** The sending side: the holders, or docker-registry. */
  sourcesCpuSecondsPerGb: number
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
async function measure(label: string, sources: number[], requester: LoopbackNode | undefined, baseUrl: string, image: TestImage): Promise<ThroughputRow> {
  const pids = [...sources, requester?.shoal.process.child.pid ?? 0]
  const before = await Promise.all(pids.map((pid) => (pid ? cpuSeconds(pid) : 0)))
  const seconds = await pull(baseUrl, image)
  const after = await Promise.all(pids.map((pid) => (pid ? cpuSeconds(pid) : 0)))
  const gb = image.layers[0]!.bytes.length / 1e9
  const used = after.map((value, i) => value - before[i]!)
  return {
    case: label, sources: sources.length, seconds: Number(seconds.toFixed(2)),
    mbPerSecond: Number((image.layers[0]!.bytes.length / 1e6 / seconds).toFixed(1)),
    requesterCpuSecondsPerGb: Number((used[used.length - 1]! / gb).toFixed(2)),
    sourcesCpuSecondsPerGb: Number((used.slice(0, -1).reduce((a, b) => a + b, 0) / gb).toFixed(2)),
  }
}

export async function runThroughput(sizeMiB = 1024): Promise<ThroughputRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-throughput-'))
  const image = buildImage({ registry: 'registry.test', repository: 'bench/big', tag: 'v1', layerSizes: [sizeMiB * 1024 * 1024] })
  await writeOciLayout(join(dir, 'shared'), [image])
  const rows: ThroughputRow[] = []
  const registry = await startUpstreamRegistry(join(dir, 'registry'), { host: '127.0.0.119', port: await freePort('127.0.0.119') })
  try {
    await pushImage(registry.url, image)
    rows.push(await measure('plain HTTP from docker-registry', [registry.process.child.pid!], undefined, registry.url, image))
  } finally {
    await registry.stop()
  }
  // The authenticated path (cluster key, as installed) next to the open one, in the same run.
  for (const holders of [1, 3]) {
    for (const trust of ['cluster key', 'open'] as const) {
      const nodes = await startLoopbackCluster({
        dir: join(dir, `run-${holders}-${trust === 'open' ? 'open' : 'key'}`), base: 120 + holders * 10 + (trust === 'open' ? 5 : 0), contents: [...Array.from({ length: holders }, () => []), []],
        beforeStart: (index, layoutDir) => { if (index < holders) execFileSync('cp', ['-alf', `${join(dir, 'shared')}/.`, layoutDir]) },
        ...(trust === 'open' ? { clusterKey: () => null } : {}),
      })
      try {
        await new Promise((resolve) => setTimeout(resolve, 2000 + sizeMiB * 2))
        const pidsOf = (list: LoopbackNode[]): number[] => list.map((node) => node.shoal.process.child.pid!)
        if (holders === 1 && trust === 'open') rows.push(await measure('plain HTTP from a shoal node\'s own content', pidsOf([nodes[0]!]), undefined, nodes[0]!.shoal.registryUrl, image))
        const requester = nodes[holders]!
        rows.push(await measure(`swarm, ${holders} holder${holders > 1 ? 's' : ''}, ${trust}`, pidsOf(nodes.slice(0, holders)), requester, requester.shoal.registryUrl, image))
      } finally {
        await stopCluster(nodes)
      }
    }
  }
  await removeTestDir(dir)
  return rows
}
