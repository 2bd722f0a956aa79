import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { startProcess, type Managed } from './processes.js'
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
}

/** `shoal registry` as a real process, logging to `<dir>/<name>.log`. */
export async function startShoal(init: ShoalInit): Promise<ShoalProcess> {
  const args = [SHOAL_MAIN, 'registry', '--registry-addr', init.registryAddr, '--metrics-addr', init.metricsAddr, '--log-level', 'debug', ...init.args]
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
