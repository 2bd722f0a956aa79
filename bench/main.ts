/** `npm run bench -- <scenario> [options]`: runs one benchmark and prints its rows as JSON and a table. */
import { runMinSize } from './min-size.js'
import { runThroughput } from './throughput.js'

const scenarios: Record<string, (args: string[]) => Promise<Record<string, unknown>[]>> = {
  throughput: async (args) => runThroughput(numberArg(args, '--size-mib', 1024)) as unknown as Promise<Record<string, unknown>[]>,
  'min-size': async (args) => runMinSize(stringArg(args, '--upload-limit')) as unknown as Promise<Record<string, unknown>[]>,
}

function numberArg(args: string[], name: string, fallback: number): number {
  const index = args.indexOf(name)
  return index >= 0 ? Number(args[index + 1]) : fallback
}

function stringArg(args: string[], name: string): string | undefined {
  const index = args.indexOf(name)
  return index >= 0 ? args[index + 1] : undefined
}

function table(rows: Record<string, unknown>[]): string {
  const columns = Object.keys(rows[0] ?? {})
  return [`| ${columns.join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${columns.map((column) => String(row[column])).join(' | ')} |`)].join('\n')
}

const [scenario, ...args] = process.argv.slice(2)
const run = scenario ? scenarios[scenario] : undefined
if (!run) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(scenarios).join('|')}> [options]\n`)
  process.exit(2)
}
const rows = await run(args)
process.stdout.write(`${JSON.stringify({ scenario, date: new Date().toISOString(), rows }, null, 2)}\n\n${table(rows)}\n`)
