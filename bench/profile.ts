import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BedNode } from './herd-bed.js'

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileSummary {
  sampledSeconds: number
  /** Share of samples by where the code lives: a package, a Node internal module, a shoal file, idle, GC. */
  byArea: { area: string; share: number }[]
  /** Top functions by self time. */
  topFunctions: { fn: string; share: number }[]
}

function area(url: string, functionName: string): string {
  if (!url) return functionName || '(native)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1]!
  const internal = /^node:(?:internal\/)?([^/]+)/.exec(url)
  if (internal) return `node:${internal[1]}`
  const own = /dist\/src\/(.+)\.js$/.exec(url)
  return own ? `shoal ${own[1]}` : url
}

/** Self time of one node's CPU profile (node --cpu-prof), grouped by area and by function. */
export async function summariseProfiles(dir: string, node: BedNode): Promise<ProfileSummary> {
  const pid = node.shoal?.process.child.pid
  const files = (await readdir(dir).catch(() => [] as string[])).filter((name) => name.endsWith('.cpuprofile'))
  const file = files.find((name) => name.includes(`.${pid}.`)) ?? files[0]
  if (!file) return { sampledSeconds: 0, byArea: [], topFunctions: [] }
  const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map((entry) => [entry.id, entry.callFrame]))
  const areas = new Map<string, number>()
  const functions = new Map<string, number>()
  let total = 0
  profile.samples.forEach((id, i) => {
    const micros = profile.timeDeltas[i] ?? 0
    const frame = byId.get(id)
    if (!frame) return
    total += micros
    const where = area(frame.url, frame.functionName)
    areas.set(where, (areas.get(where) ?? 0) + micros)
    const name = `${frame.functionName || '(anonymous)'} ${where}${frame.url ? `:${frame.lineNumber + 1}` : ''}`
    functions.set(name, (functions.get(name) ?? 0) + micros)
  })
  const top = (map: Map<string, number>, count: number) => [...map].sort((a, b) => b[1] - a[1]).slice(0, count)
  return {
    sampledSeconds: Number((total / 1e6).toFixed(1)),
    byArea: top(areas, 12).map(([name, micros]) => ({ area: name, share: Number((micros / total).toFixed(3)) })),
    topFunctions: top(functions, 12).map(([fn, micros]) => ({ fn, share: Number((micros / total).toFixed(3)) })),
  }
}
