/**
 * The herd: N nodes (each link capped at B with tc tbf), one holding an S-byte layer, all the
 * others pulling it at the same moment through their own shoal, next to the same pull in
 * single-source mode (each blob streamed from one holder, as Spegel does) and straight from an
 * upstream registry whose link has the same cap. Needs root (network namespaces).
 *
 *   npm run bench -- herd [--nodes 2,4,8] [--size-mib 512] [--rate-mbit 200] [--modes swarm,single-source,upstream] [--profile]
 */
import { execFileSync } from 'node:child_process'
import { mkdtemp } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { removeStaleNamespaces } from '../test/e2e/netns.js'
import { buildImage, writeOciLayout, type TestImage } from '../test/support/images.js'
import { removeTestDir } from '../test/support/processes.js'
import { HerdBed, type BedNode } from './herd-bed.js'
import { median, round } from './numbers.js'
import { cpuSeconds } from './proc.js'
import { summariseProfiles, type ProfileSummary } from './profile.js'
import { eventually } from '../test/support/eventually.js'

export type HerdMode = 'swarm' | 'single-source' | 'upstream'

export interface HerdInit {
  nodes: number[]
  sizeMiB: number
  rateMbit: number
  modes: HerdMode[]
  profile: boolean
}

export interface HerdRow {
  nodes: number
  mode: HerdMode
  sizeMB: number
  rateMbit: number
  slowestSeconds: number
  medianSeconds: number
  boundSeconds: number
  slowestRatio: number
  medianRatio: number
  /** Bytes the holder (or upstream) uploaded, in copies of the blob. */
  sourceCopies: number | null
  /** CPU used by all daemons during the pull, as a share of every core for the slowest node's time. */
  cpuBusy: number
}

/** Kumar–Ross: T* = max(S/u_seed, S/B, N·S/(u_seed + N·B)), N downloaders, in seconds. */
export function kumarRossBound(sizeBytes: number, seedBytesPerSecond: number, nodeBytesPerSecond: number, downloaders: number): number {
  return Math.max(sizeBytes / seedBytesPerSecond, sizeBytes / nodeBytesPerSecond,
    (downloaders * sizeBytes) / (seedBytesPerSecond + downloaders * nodeBytesPerSecond))
}

async function runOne(dir: string, image: TestImage, nodes: number, mode: HerdMode, init: HerdInit, profiles: Map<string, ProfileSummary>): Promise<HerdRow> {
  const bed = new HerdBed(join(dir, `${mode}-${nodes}`), `bh${process.pid % 10000}-`)
  const layer = image.layers[0]!
  try {
    await bed.create(nodes)
    const [holder, ...requesters] = bed.nodes as [BedNode, ...BedNode[]]
    let url: (node: BedNode) => string
    if (mode === 'upstream') {
      await bed.startUpstream(image)
      url = () => `${bed.upstreamUrl}/v2/${image.repository}/blobs/${layer.digest}`
    } else {
      const profileDir = init.profile && mode === 'swarm' ? join(dir, `profile-${nodes}`) : undefined
      const nodeArgs = process.env['SHOAL_NODE_ARGS']
      if (profileDir) process.env['SHOAL_NODE_ARGS'] = `${nodeArgs ?? ''} --cpu-prof --cpu-prof-dir=${profileDir}`
      try {
        await bed.startShoals((index) => join(dir, index === 1 ? 'holder-layout' : 'empty-layout'), mode === 'single-source' ? ['--single-source'] : [])
      } finally {
        if (nodeArgs === undefined) delete process.env['SHOAL_NODE_ARGS']
        else process.env['SHOAL_NODE_ARGS'] = nodeArgs
      }
      for (const node of requesters) {
        await eventually(`node ${node.index} to find the holder`, async () =>
          (await bed.fetch(`http://${node.address}:5000/v2/${image.repository}/blobs/${layer.digest}?ns=registry.test`, { method: 'HEAD' })).status === 200, 30_000, 250)
      }
      url = (node) => `http://${node.address}:5000/v2/${image.repository}/blobs/${layer.digest}?ns=registry.test`
    }
    await bed.shape(init.rateMbit)
    await sleep(500)
    const pids = bed.daemonPids()
    const cpuBefore = await Promise.all(pids.map(cpuSeconds))
    const results = await bed.fetchAll(requesters, url, layer.digest)
    const cpuUsed = (await Promise.all(pids.map(cpuSeconds))).reduce((sum, value, i) => sum + value - cpuBefore[i]!, 0)
    const sourceCopies = mode === 'upstream' ? null : round((await bed.stats(holder)).totals.sent / layer.bytes.length)
    if (init.profile && mode === 'swarm') {
      await bed.stopShoals()
      const slowest = results.reduce((a, b) => (b.seconds > a.seconds ? b : a))
      profiles.set(`N=${nodes}, slowest node ${slowest.node}`, await summariseProfiles(join(dir, `profile-${nodes}`), bed.nodes[slowest.node - 1]!))
    }
    const bytesPerSecond = (init.rateMbit * 1e6) / 8
    const bound = kumarRossBound(layer.bytes.length, bytesPerSecond, bytesPerSecond, requesters.length)
    const times = results.map((result) => result.seconds)
    const slowest = Math.max(...times)
    return {
      nodes, mode, sizeMB: round(layer.bytes.length / 1e6, 0), rateMbit: init.rateMbit, slowestSeconds: round(slowest), medianSeconds: round(median(times)),
      boundSeconds: round(bound), slowestRatio: round(slowest / bound), medianRatio: round(median(times) / bound), sourceCopies,
      cpuBusy: round(cpuUsed / (slowest * cpus().length)),
    }
  } finally {
    await bed.destroy()
  }
}

export async function runHerd(init: HerdInit): Promise<{ rows: HerdRow[]; profiles: Map<string, ProfileSummary> }> {
  if (process.getuid?.() !== 0) throw new Error('the herd benchmark needs root (network namespaces, tc)')
  await removeStaleNamespaces(/^bh\d+-/)
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-herd-'))
  const image = buildImage({ registry: 'registry.test', repository: 'bench/herd', tag: 'v1', layerSizes: [init.sizeMiB * 1024 * 1024] })
  await writeOciLayout(join(dir, 'holder-layout'), [image])
  await writeOciLayout(join(dir, 'empty-layout'), [])
  execFileSync('chmod', ['-R', 'a+rX', dir])
  const rows: HerdRow[] = []
  const profiles = new Map<string, ProfileSummary>()
  try {
    for (const nodes of init.nodes) {
      for (const mode of init.modes) {
        const row = await runOne(dir, image, nodes, mode, init, profiles)
        process.stderr.write(`${JSON.stringify(row)}\n`)
        rows.push(row)
      }
    }
  } finally {
    await removeTestDir(dir)
  }
  return { rows, profiles }
}
