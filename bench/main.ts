/**
 * `npm run bench -- <scenario> [options]`: runs one benchmark, prints its rows as JSON and a
 * Markdown table, and writes them to docs/bench/<scenario>.{json,md} (herd: also an SVG chart),
 * or to $SHOAL_BENCH_RESULTS when set (the CI's tiny runs, bench/smoke.sh).
 */
import { runHerd, type HerdMode } from './herd.js'
import { runFirstPull, type FirstPullMode } from './first-pull.js'
import { DEFAULT_DHT_NODES, DEFAULT_MISSING_SAMPLES, runLatency } from './latency.js'
import { runMemory } from './memory.js'
import { runMinSize, SIZES_MIB } from './min-size.js'
import { herdSvg, markdownTable, writeResults, writeSvg } from './report.js'
import { runSoak } from './soak.js'
import { growthRows, soakRows, soakSvg } from './soak-report.js'
import { runThroughput } from './throughput.js'

type Rows = Record<string, unknown>[]
/** `name`: where the results go, when not the scenario's own name. */
type Outcome = { rows: Rows; extra?: Record<string, unknown>; name?: string }

const scenarios: Record<string, (args: string[]) => Promise<Outcome>> = {
  throughput: async (args) => ({ rows: await runThroughput(numberArg(args, '--size-mib', 1024), numberArg(args, '--floor-runs', 5)) as unknown as Rows }),
  'min-size': async (args) => ({ rows: await runMinSize(stringArg(args, '--upload-limit'), listArg(args, '--sizes-mib', SIZES_MIB.join(',')).map(positive('--sizes-mib'))) as unknown as Rows }),
  herd: async (args) => {
    const { rows, profiles } = await runHerd({
      nodes: listArg(args, '--nodes', '2,4,8').map(Number), sizeMiB: numberArg(args, '--size-mib', 512), rateMbit: numberArg(args, '--rate-mbit', 200),
      modes: listArg(args, '--modes', 'swarm,single-source,upstream') as HerdMode[], profile: args.includes('--profile'),
    })
    if (profiles.size === 0) await writeSvg('herd.svg', herdSvg(rows))
    return { rows: rows as unknown as Rows, extra: { profiles: Object.fromEntries(profiles) }, name: profiles.size ? 'herd-profile' : 'herd' }
  },
  'first-pull': async (args) => ({ rows: await runFirstPull({ nodes: listArg(args, '--nodes', '3,8').map(Number),
    modes: listArg(args, '--modes', 'first-pull,no-upstream-fetch') as FirstPullMode[], sizeMiB: numberArg(args, '--size-mib', 128),
    upstreamMbit: numberArg(args, '--upstream-mbit', 100), nodeMbit: numberArg(args, '--node-mbit', 1000) }) as unknown as Rows }),
  latency: async (args) => ({ rows: await runLatency(numberArg(args, '--dht-nodes', DEFAULT_DHT_NODES), numberArg(args, '--samples', DEFAULT_MISSING_SAMPLES)) as unknown as Rows }),
  memory: async (args) => ({ rows: await runMemory(numberArg(args, '--size-mib', 1024), numberArg(args, '--transfers', 4)) as unknown as Rows }),
  soak: async (args) => {
    const result = await runSoak({ minutes: numberArg(args, '--minutes', 20), intervalS: numberArg(args, '--interval-s', 30),
      blobs: numberArg(args, '--blobs', 6), blobMiB: numberArg(args, '--blob-mib', 48) })
    await writeSvg('soak.svg', soakSvg(result))
    return { rows: soakRows(result.pulls) as unknown as Rows, extra: { growth: growthRows(result.samples), events: result.events, samples: result.samples,
      failures: result.pulls.filter((pull) => !pull.ok) } }
  },
}

function numberArg(args: string[], name: string, fallback: number): number {
  return positive(name)(stringArg(args, name) ?? String(fallback))
}

function positive(name: string): (text: string) => number {
  return (text) => {
    const value = Number(text)
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, not ${JSON.stringify(text)}`)
    return value
  }
}

function stringArg(args: string[], name: string): string | undefined {
  const index = args.indexOf(name)
  return index >= 0 ? args[index + 1] : undefined
}

function listArg(args: string[], name: string, fallback: string): string[] {
  return (stringArg(args, name) ?? fallback).split(',').map((item) => item.trim()).filter(Boolean)
}

const [scenario, ...args] = process.argv.slice(2)
const run = scenario ? scenarios[scenario] : undefined
if (!run) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(scenarios).join('|')}> [options]\n`)
  process.exit(2)
}
const { rows, extra, name } = await run(args)
await writeResults(name ?? scenario!, `npm run bench -- ${[scenario, ...args].join(' ')}`, rows, extra)
process.stdout.write(`${JSON.stringify({ scenario, date: new Date().toISOString(), rows, ...extra }, null, 2)}\n\n${markdownTable(rows)}\n`)
