/**
 * One 1 GiB pull through a node's mirror endpoint, from 1 and from 3 holders, on loopback,
 * next to a plain HTTP download of the same blob (a shoal node serving it from its own
 * content). Reports MB/s and CPU seconds per GB of every process involved.
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
import { removeTestDir } from '../test/support/processes.js'
import { cpuSeconds } from './proc.js'

export interface ThroughputRow {
  case: string
  holders: number
  seconds: number
  mbPerSecond: number
  requesterCpuSecondsPerGb: number
  holdersCpuSecondsPerGb: number
}

async function pull(node: LoopbackNode, image: TestImage): Promise<number> {
  const layer = image.layers[0]!
  const started = performance.now()
  const response = await fetch(`${node.shoal.registryUrl}/v2/${image.repository}/blobs/${layer.digest}?ns=registry.test`)
  if (response.status !== 200) throw new Error(`pull through ${node.host} answered ${response.status}: ${await response.text()}`)
  const hash = createHash('sha256')
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) hash.update(chunk)
  if (`sha256:${hash.digest('hex')}` !== layer.digest) throw new Error('pulled bytes do not match the digest')
  return (performance.now() - started) / 1000
}

async function measure(label: string, holders: LoopbackNode[], requester: LoopbackNode, image: TestImage): Promise<ThroughputRow> {
  const pids = [...holders, requester].map((node) => node.shoal.process.child.pid!)
  const before = await Promise.all(pids.map(cpuSeconds))
  const seconds = await pull(requester, image)
  const after = await Promise.all(pids.map(cpuSeconds))
  const gb = image.layers[0]!.bytes.length / 1e9
  const used = after.map((value, i) => value - before[i]!)
  return {
    case: label, holders: holders.length, seconds: Number(seconds.toFixed(2)),
    mbPerSecond: Number((image.layers[0]!.bytes.length / 1e6 / seconds).toFixed(1)),
    requesterCpuSecondsPerGb: Number((used[used.length - 1]! / gb).toFixed(2)),
    holdersCpuSecondsPerGb: Number((used.slice(0, -1).reduce((a, b) => a + b, 0) / gb).toFixed(2)),
  }
}

export async function runThroughput(sizeMiB = 1024): Promise<ThroughputRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-throughput-'))
  const image = buildImage({ registry: 'registry.test', repository: 'bench/big', tag: 'v1', layerSizes: [sizeMiB * 1024 * 1024] })
  await writeOciLayout(join(dir, 'shared'), [image])
  const rows: ThroughputRow[] = []
  for (const holders of [1, 3]) {
    const nodes = await startLoopbackCluster({
      dir: join(dir, `run-${holders}`), base: 120 + holders * 10, contents: [...Array.from({ length: holders }, () => []), []],
      beforeStart: (index, layoutDir) => { if (index < holders) execFileSync('cp', ['-alf', `${join(dir, 'shared')}/.`, layoutDir]) },
    })
    try {
      await new Promise((resolve) => setTimeout(resolve, 2000 + sizeMiB * 2))
      if (holders === 1) rows.push(await measure('plain HTTP from the holder\'s own content', [], nodes[0]!, image))
      rows.push(await measure(`swarm, ${holders} holder${holders > 1 ? 's' : ''}`, nodes.slice(0, holders), nodes[holders]!, image))
    } finally {
      await stopCluster(nodes)
    }
  }
  await removeTestDir(dir)
  return rows
}
