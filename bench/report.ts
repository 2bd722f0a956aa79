import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpus, totalmem } from 'node:os'

/** docs/bench, or $SHOAL_BENCH_RESULTS (runs whose results are not kept, such as CI's). */
export const RESULTS_DIR = process.env['SHOAL_BENCH_RESULTS'] || fileURLToPath(new URL('../../docs/bench/', import.meta.url))

export function markdownTable(rows: Record<string, unknown>[]): string {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))]
  const cell = (value: unknown): string => (value === null || value === undefined ? '–' : String(value))
  return [`| ${columns.join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${columns.map((column) => cell(row[column])).join(' | ')} |`)].join('\n')
}

export function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}`
}

/** Writes docs/bench/<scenario>.json and .md (the command, the date, the machine, the table). */
export async function writeResults(scenario: string, command: string, rows: Record<string, unknown>[], extra: Record<string, unknown> = {}): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true })
  const date = new Date().toISOString()
  await writeFile(join(RESULTS_DIR, `${scenario}.json`), `${JSON.stringify({ scenario, command, date, machine: machine(), rows, ...extra }, null, 2)}\n`)
  const markdown = `<!-- written by \`${command}\` on ${date} (${machine()}) -->\n\n${markdownTable(rows)}\n`
  await writeFile(join(RESULTS_DIR, `${scenario}.md`), markdown)
  return markdown
}

const MODE_COLOURS: Record<string, string> = { swarm: '#1f77b4', 'single-source': '#ff7f0e', upstream: '#7f7f7f' }

/** Grouped bars: slowest node's time per N and mode, with the Kumar–Ross bound as a tick per group. */
export function herdSvg(rows: { nodes: number; mode: string; slowestSeconds: number; boundSeconds: number }[]): string {
  const groups = [...new Set(rows.map((row) => row.nodes))]
  const modes = [...new Set(rows.map((row) => row.mode))]
  const max = Math.max(...rows.map((row) => Math.max(row.slowestSeconds, row.boundSeconds)), 1)
  const width = 640
  const height = 320
  const left = 50
  const bottom = 40
  const plotHeight = height - bottom - 40
  const groupWidth = (width - left - 20) / groups.length
  const barWidth = (groupWidth - 30) / modes.length
  const y = (seconds: number): number => height - bottom - (seconds / max) * plotHeight
  const parts: string[] = []
  for (const [g, nodes] of groups.entries()) {
    const x0 = left + g * groupWidth + 15
    for (const [m, mode] of modes.entries()) {
      const row = rows.find((entry) => entry.nodes === nodes && entry.mode === mode)
      if (!row) continue
      const x = x0 + m * barWidth
      parts.push(`<rect x="${x.toFixed(1)}" y="${y(row.slowestSeconds).toFixed(1)}" width="${(barWidth - 4).toFixed(1)}" height="${(height - bottom - y(row.slowestSeconds)).toFixed(1)}" fill="${MODE_COLOURS[mode] ?? '#333'}"><title>${mode}, N=${nodes}: ${row.slowestSeconds} s</title></rect>`)
      parts.push(`<text x="${(x + barWidth / 2 - 2).toFixed(1)}" y="${(y(row.slowestSeconds) - 4).toFixed(1)}" font-size="10" text-anchor="middle">${Math.round(row.slowestSeconds)}</text>`)
    }
    const bound = rows.find((entry) => entry.nodes === nodes)!.boundSeconds
    parts.push(`<line x1="${x0 - 5}" x2="${(x0 + modes.length * barWidth).toFixed(1)}" y1="${y(bound).toFixed(1)}" y2="${y(bound).toFixed(1)}" stroke="#d62728" stroke-dasharray="4 3" stroke-width="2"/>`)
    parts.push(`<text x="${(x0 + (modes.length * barWidth) / 2).toFixed(1)}" y="${height - bottom + 16}" font-size="12" text-anchor="middle">N = ${nodes}</text>`)
  }
  const legend = [...modes.map((mode, i) => `<rect x="${left + i * 130}" y="8" width="10" height="10" fill="${MODE_COLOURS[mode] ?? '#333'}"/><text x="${left + i * 130 + 14}" y="17" font-size="12">${mode}</text>`),
    `<line x1="${left + modes.length * 130}" x2="${left + modes.length * 130 + 20}" y1="13" y2="13" stroke="#d62728" stroke-dasharray="4 3" stroke-width="2"/><text x="${left + modes.length * 130 + 24}" y="17" font-size="12">T* (Kumar–Ross)</text>`]
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="12" y="${height / 2}" font-size="12" transform="rotate(-90 12 ${height / 2})" text-anchor="middle">slowest node, seconds</text>
<line x1="${left}" x2="${width - 10}" y1="${height - bottom}" y2="${height - bottom}" stroke="#333"/>
${legend.join('\n')}
${parts.join('\n')}
</svg>
`
}

export async function writeSvg(name: string, svg: string): Promise<void> {
  await mkdir(RESULTS_DIR, { recursive: true })
  await writeFile(join(RESULTS_DIR, name), svg)
}
