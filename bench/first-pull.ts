/**
 * First pulls: N nodes that hold nothing pull the same new layer at once, the upstream registry
 * behind a capped link (the cluster's way out). With `--upstream-fetch` through their shoal, and
 * as without it (each node straight from upstream, what containerd does after a 404); next to
 * one node alone through the same way out. Upstream bytes are counted on its link. Needs root.
 *
 *   npm run bench -- first-pull [--nodes 3,8] [--size-mib 128] [--upstream-mbit 100] [--node-mbit 1000] [--modes first-pull,no-upstream-fetch]
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { removeStaleNamespaces } from '../test/e2e/netns.js'
import { buildImage, writeOciLayout, type TestImage } from '../test/support/images.js'
import { removeTestDir } from '../test/support/processes.js'
import { eventually } from '../test/support/eventually.js'
import { HerdBed, type BedNode } from './herd-bed.js'
import { round } from './numbers.js'
import { cpuSeconds } from './proc.js'

export interface FirstPullInit {
  nodes: number[]
  /** What to run besides one node alone: `first-pull`, `no-upstream-fetch`. */
  modes: FirstPullMode[]
  sizeMiB: number
  upstreamMbit: number
  nodeMbit: number
}

export type FirstPullMode = 'first-pull' | 'no-upstream-fetch'

export interface FirstPullRow {
  nodes: number
  mode: 'alone' | 'first-pull' | 'no-upstream-fetch'
  sizeMB: number
  upstreamMbit: number
  nodeMbit: number
  slowestSeconds: number
  medianSeconds: number
  /** Slowest node's time over one node's alone through the same way out. */
  slowestRatio: number
  /** Bytes upstream sent on its link, in copies of the layer. */
  upstreamCopies: number
  /** The most any node sent on its link, in copies of the layer (the fetcher's uplink, or a relay's). */
  maxNodeSentCopies: number
  /** CPU used by the daemons (every shoal and the registry) during the pull, as a share of every core for the slowest node's time. */
  cpuBusy: number
}

interface Timing {
  slowest: number
  median: number
  copies: number
  maxNodeCopies: number
  cpuBusy: number
}

const UPSTREAM = '127.77.0.100:5000'
async function waitForMembers(bed: HerdBed, nodes: BedNode[]): Promise<void> {
  for (const node of nodes) {
    await eventually(`node ${node.index} to know the others`, async () =>
      ((await (await bed.fetch(`http://${node.address}:9090/stats`)).json()) as { firstPulls: { members: string[] } }).firstPulls.members.length === nodes.length - 1, 30_000, 250)
  }
}

async function timed(bed: HerdBed, nodes: BedNode[], url: (node: BedNode) => string, image: TestImage): Promise<Timing> {
  const layer = image.layers[0]!
  const sentBy = () => Promise.all([bed.upstreamSentBytes(), ...bed.nodes.map((node) => bed.nodeSentBytes(node))])
  const pids = bed.daemonPids()
  const [before, cpuBefore] = await Promise.all([sentBy(), Promise.all(pids.map(cpuSeconds))])
  const results = await bed.fetchAll(nodes, url, layer.digest)
  const cpuUsed = (await Promise.all(pids.map(cpuSeconds))).reduce((sum, value, i) => sum + value - cpuBefore[i]!, 0)
  await sleep(200)
  const [upstream, ...byNode] = (await sentBy()).map((bytes, index) => (bytes - before[index]!) / layer.bytes.length)
  const times = results.map((result) => result.seconds).sort((a, b) => a - b)
  const slowest = times.at(-1)!
  return { slowest, median: times[Math.floor(times.length / 2)]!, copies: upstream!, maxNodeCopies: Math.max(...byNode), cpuBusy: cpuUsed / (slowest * cpus().length) }
}

async function runOne(dir: string, nodes: number, init: FirstPullInit): Promise<FirstPullRow[]> {
  const bed = new HerdBed(join(dir, `first-pull-${nodes}`), `bf${process.pid % 10000}-`)
  const images = ['alone', 'first', 'direct'].map((name, index) =>
    buildImage({ registry: UPSTREAM, repository: `bench/${name}`, tag: 'v1', layerSizes: [init.sizeMiB * 1024 * 1024 + index] }))
  const [alone, first, direct] = images as [TestImage, TestImage, TestImage]
  try {
    await bed.create(nodes)
    await bed.startUpstream(...images)
    await bed.startShoals(() => join(dir, 'empty-layout'), ['--upstream-fetch', '--containerd-registry-config-path', join(dir, 'certs.d')])
    await waitForMembers(bed, bed.nodes)
    await bed.shapeLinks(init.nodeMbit, init.upstreamMbit)
    await sleep(500)
    const fromUpstream = (image: TestImage) => () => `${bed.upstreamUrl}/v2/${image.repository}/blobs/${image.layers[0]!.digest}`
    const row = (mode: FirstPullRow['mode'], result: Timing, baseline: number): FirstPullRow => ({
      nodes, mode, sizeMB: round((init.sizeMiB * 1024 * 1024) / 1e6, 0), upstreamMbit: init.upstreamMbit, nodeMbit: init.nodeMbit,
      slowestSeconds: round(result.slowest), medianSeconds: round(result.median), slowestRatio: round(result.slowest / baseline), upstreamCopies: round(result.copies),
      maxNodeSentCopies: round(result.maxNodeCopies), cpuBusy: round(result.cpuBusy),
    })
    const single = await timed(bed, [bed.nodes[0]!], fromUpstream(alone), alone)
    const rows = [row('alone', single, single.slowest)]
    if (init.modes.includes('first-pull')) {
      const shared = await timed(bed, bed.nodes, (node) => `http://${node.address}:5000/v2/${first.repository}/blobs/${first.layers[0]!.digest}?ns=${UPSTREAM}`, first)
      rows.push(row('first-pull', shared, single.slowest))
    }
    if (init.modes.includes('no-upstream-fetch')) rows.push(row('no-upstream-fetch', await timed(bed, bed.nodes, fromUpstream(direct), direct), single.slowest))
    return rows
  } finally {
    await bed.destroy()
  }
}

export async function runFirstPull(init: FirstPullInit): Promise<FirstPullRow[]> {
  if (process.getuid?.() !== 0) throw new Error('the first-pull benchmark needs root (network namespaces, tc)')
  await removeStaleNamespaces(/^bf\d+-/)
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-first-pull-'))
  await writeOciLayout(join(dir, 'empty-layout'), [])
  await mkdir(join(dir, 'certs.d', UPSTREAM), { recursive: true })
  await writeFile(join(dir, 'certs.d', UPSTREAM, 'hosts.toml'), `server = "http://${UPSTREAM}"\n`)
  execFileSync('chmod', ['-R', 'a+rX', dir])
  const rows: FirstPullRow[] = []
  try {
    for (const nodes of init.nodes) {
      for (const row of await runOne(dir, nodes, init)) {
        process.stderr.write(`${JSON.stringify(row)}\n`)
        rows.push(row)
      }
    }
  } finally {
    await removeTestDir(dir)
  }
  return rows
}
