import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { startProcess, type Managed } from './processes.js'
import { ClusterKey } from '../../src/net/cluster-key.js'
import { eventually } from './eventually.js'

/** The built CLI, dist/src/main.js. */
export const SHOAL_MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url))

export interface ShoalProcess {
  process: Managed
  registryUrl: string
  metricsUrl: string
  stop(): Promise<void>
}

export interface ShoalInit {
  dir: string
  name: string
  registryAddr: string
  metricsAddr: string
  args: string[]
  netns?: string
  /** Wait for /readyz (default true). */
  waitReady?: boolean
  /** A command the node runs under, e.g. strace with its flags. */
  wrap?: string[]
  /** The node's cluster key file lines (default: TEST_CLUSTER_KEY); null: an open swarm, no key. */
  clusterKey?: string[] | null
}

/** The key every test node has unless a test says otherwise. */
export const TEST_CLUSTER_KEY = 'shoal-test-cluster-key-0123456789abcdef0123456789abcdef'

/** The test key as a ClusterKey, for in-process test peers that act as nodes of the cluster. */
export function testClusterKey(): ClusterKey {
  return ClusterKey.parse(TEST_CLUSTER_KEY, 'test key')
}

/** Writes a cluster key file with these keys into `dir` and returns its path. */
export function writeClusterKey(dir: string, keys: string[]): string {
  const path = join(dir, `cluster-${createHash('sha256').update(keys.join('\n')).digest('hex').slice(0, 8)}.key`)
  writeFileSync(path, `${keys.join('\n')}\n`, { mode: 0o600 })
  return path
}

/** `shoal registry` as a real process, logging to `<dir>/<name>.log`. */
export async function startShoal(init: ShoalInit): Promise<ShoalProcess> {
  const keys = init.clusterKey === undefined ? [TEST_CLUSTER_KEY] : init.clusterKey
  const keyArgs = keys ? ['--cluster-key-file', writeClusterKey(init.dir, keys)] : []
  // Test nodes pull from upstream only when a test says so: an ?ns= host must never be asked outside loopback.
  const upstreamArgs = init.args.some((arg) => arg.startsWith('--upstream-fetch')) ? [] : ['--upstream-fetch=false']
  const args = [SHOAL_MAIN, 'registry', '--registry-addr', init.registryAddr, '--metrics-addr', init.metricsAddr, '--log-level', 'debug', ...keyArgs, ...upstreamArgs, ...init.args]
  // SHOAL_NODE_ARGS: extra node flags for every started node, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env['SHOAL_NODE_ARGS'] ?? '').split(' ').filter(Boolean)
  const full = [...(init.wrap ?? []), process.execPath, ...nodeArgs, ...args]
  const [command, argv] = init.netns ? ['ip', ['netns', 'exec', init.netns, ...full]] : [full[0]!, full.slice(1)]
  const managed = startProcess(init.name, command, argv, join(init.dir, `${init.name}.log`))
  const registryUrl = `http://${init.registryAddr}`
  const shoal = { process: managed, registryUrl, metricsUrl: `http://${init.metricsAddr}`, stop: () => managed.stop() }
  if (init.waitReady ?? true) {
    await eventually(`${init.name} ready`, async () => {
      if (managed.child.exitCode !== null) throw new Error(`${init.name} exited with ${managed.child.exitCode}; see ${managed.logPath}`)
      return (await fetch(`${registryUrl}/readyz`)).status === 200
    }, 20_000)
  }
  return shoal
}

export interface CommandResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a one-shot shoal command (configuration, cleanup, metainfo…) to completion. */
export function runShoal(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SHOAL_MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => { stdout += chunk })
    child.stderr.on('data', (chunk) => { stderr += chunk })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** A counter's value from Prometheus text, summed over series whose labels include `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    const matches = Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))
    if (matches) total += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return total
}
