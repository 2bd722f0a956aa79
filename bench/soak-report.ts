import { percentile } from './numbers.js'
import type { ChaosEvent, PullRecord, Sample, SoakResult } from './soak.js'

export interface SoakRow {
  phase: string
  pulls: number
  failed: number
  wrongBytes: number
  p50Ms: number | null
  p99Ms: number | null
}

export interface GrowthRow {
  daemon: string
  rssStartMiB: number
  rssEndMiB: number
  rssPeakMiB: number
  fdsStart: number
  fdsEnd: number
  fdsPeak: number
}

/** Pulls done, failed and wrong per phase, with p50/p99 of the successful ones. */
export function soakRows(pulls: PullRecord[]): SoakRow[] {
  return (['healthy', 'chaos'] as const).map((phase) => {
    const inPhase = pulls.filter((pull) => pull.phase === phase)
    const times = inPhase.filter((pull) => pull.ok).map((pull) => pull.ms)
    return { phase, pulls: inPhase.length, failed: inPhase.filter((pull) => !pull.ok).length, wrongBytes: inPhase.filter((pull) => pull.wrongBytes).length,
      p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) }
  })
}

/** Per daemon: RSS and descriptors at the first and last sample, and the peak. */
export function growthRows(samples: Sample[]): GrowthRow[] {
  const nodes = [...new Set(samples.map((entry) => entry.node))].sort()
  return nodes.map((node) => {
    const own = samples.filter((entry) => entry.node === node)
    const first = own[0]!
    const last = own[own.length - 1]!
    return { daemon: node === 4 ? 'node 4 (requester)' : `node ${node} (holder)`, rssStartMiB: first.rssMiB, rssEndMiB: last.rssMiB,
      rssPeakMiB: Math.max(...own.map((entry) => entry.rssMiB)), fdsStart: first.fds, fdsEnd: last.fds, fdsPeak: Math.max(...own.map((entry) => entry.fds)) }
  })
}

const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728']
/** Samples further apart than this belong to different runs of a daemon. */
const GAP_MS = 12_000

function runsOf(samples: Sample[]): Sample[][] {
  const runs: Sample[][] = []
  for (const entry of samples) {
    const run = runs[runs.length - 1]
    if (run && entry.at - run[run.length - 1]!.at <= GAP_MS) run.push(entry)
    else runs.push([entry])
  }
  return runs
}
const ACTION_MARK: Record<ChaosEvent['action'], string> = { stop: 'S', continue: 'C', kill: 'K', restart: 'R' }

/** Two panels over time, one line per daemon: RSS (MiB) and open descriptors; chaos actions as ticks. */
export function soakSvg(result: SoakResult): string {
  const width = 760
  const panel = 200
  const left = 60
  const top = 30
  const end = Math.max(...result.samples.map((entry) => entry.at), 1)
  const x = (at: number): number => left + (at / end) * (width - left - 20)
  const parts: string[] = []
  const drawPanel = (index: number, label: string, value: (entry: Sample) => number): void => {
    const y0 = top + index * (panel + 50)
    const max = Math.max(...result.samples.map(value), 1) * 1.1
    const y = (v: number): number => y0 + panel - (v / max) * panel
    parts.push(`<text x="${left}" y="${y0 - 8}" font-size="12">${label}</text>`)
    parts.push(`<line x1="${left}" x2="${width - 20}" y1="${y0 + panel}" y2="${y0 + panel}" stroke="#333"/><line x1="${left}" x2="${left}" y1="${y0}" y2="${y0 + panel}" stroke="#333"/>`)
    for (const tick of [0, 0.5, 1]) parts.push(`<text x="${left - 6}" y="${(y(max * tick / 1.1) + 4).toFixed(1)}" font-size="10" text-anchor="end">${Math.round(max * tick / 1.1)}</text>`)
    for (const node of [1, 2, 3, 4]) {
      // A gap in the samples (the daemon was dead) breaks the line.
      for (const run of runsOf(result.samples.filter((entry) => entry.node === node))) {
        const points = run.map((entry) => `${x(entry.at).toFixed(1)},${y(value(entry)).toFixed(1)}`)
        if (points.length > 1) parts.push(`<polyline fill="none" stroke="${COLOURS[node - 1]}" stroke-width="1.5" points="${points.join(' ')}"/>`)
      }
    }
    for (const event of result.events) {
      parts.push(`<line x1="${x(event.at).toFixed(1)}" x2="${x(event.at).toFixed(1)}" y1="${y0 + panel}" y2="${y0 + panel + 6}" stroke="${COLOURS[event.node - 1]}"/>`)
      if (index === 1) parts.push(`<text x="${x(event.at).toFixed(1)}" y="${y0 + panel + 16}" font-size="8" text-anchor="middle" fill="${COLOURS[event.node - 1]}">${ACTION_MARK[event.action]}</text>`)
    }
  }
  drawPanel(0, 'RSS, MiB', (entry) => entry.rssMiB)
  drawPanel(1, 'open descriptors', (entry) => entry.fds)
  const height = top + 2 * (panel + 50) + 20
  const legend = [1, 2, 3, 4].map((node, i) => `<rect x="${left + i * 150}" y="${height - 16}" width="10" height="10" fill="${COLOURS[i]}"/><text x="${left + i * 150 + 14}" y="${height - 7}" font-size="11">node ${node}${node === 4 ? ' (requester)' : ' (holder)'}</text>`)
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${width - 20}" y="16" font-size="10" text-anchor="end">ticks: S stop, C continue, K kill, R restart; x: ${Math.round(end / 60000)} min</text>
${parts.join('\n')}
${legend.join('\n')}
</svg>
`
}
