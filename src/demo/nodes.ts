import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { Measurement } from '../status/measure.js'
import { formatBytes } from '../status/status-table.js'
import type { TestImage } from './sample-image.js'

const SHOAL_MAIN = fileURLToPath(new URL('../main.js', import.meta.url))
const POLL_MS = 250
const STOP_GRACE_MS = 5000

export interface DemoNodeInit {
  dir: string
  index: number
  host: string
  basePort: number
}

/** One `shoal registry` process of the demo, its ports derived from its index. */
export class DemoNode {
  readonly index: number
  readonly layoutDir: string
  readonly p2p: string
  readonly metricsAddr: string
  readonly registryUrl: string
  readonly metricsUrl: string
  private readonly nodeDir: string
  private child: ChildProcess | undefined
  exited: Promise<unknown> = new Promise(() => {})

  constructor(private readonly init: DemoNodeInit) {
    const { host, basePort, index } = init
    this.index = index
    this.nodeDir = join(init.dir, `node-${index + 1}`)
    this.layoutDir = join(this.nodeDir, 'layout')
    this.p2p = `${host}:${basePort + 20 + index}`
    this.metricsAddr = `${host}:${basePort + 10 + index}`
    this.registryUrl = `http://${host}:${basePort + index}`
    this.metricsUrl = `http://${this.metricsAddr}`
  }

  start(bootstrap: string[], extraArgs: string[]): void {
    const { host, basePort, index } = this.init
    const args = [SHOAL_MAIN, 'registry', '--content-dir', this.layoutDir, '--data-dir', join(this.nodeDir, 'data'),
      '--registry-addr', `${host}:${basePort + index}`, '--metrics-addr', this.metricsAddr, '--p2p-addr', this.p2p,
      // The demo's registry (demo.local) does not exist: nothing is pulled from upstream.
      '--static-bootstrap-peers', bootstrap.join(','), '--log-level', 'info', '--upstream-fetch=false', ...extraArgs]
    const log = createWriteStream(this.logPath())
    this.child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout!.pipe(log)
    this.child.stderr!.pipe(log)
    this.exited = once(this.child, 'exit')
  }

  logPath(): string {
    return join(this.nodeDir, 'shoal.log')
  }

  async waitReady(timeoutMs: number): Promise<void> {
    await waitUntil(`node ${this.index + 1} to be ready`, timeoutMs, async () => {
      if (this.child?.exitCode !== null) throw new Error(`node ${this.index + 1} exited:\n${this.lastLog()}`)
      return (await fetch(`${this.registryUrl}/readyz`).catch(() => undefined))?.ok === true
    })
  }

  /** Whether this node's mirror finds a holder of every blob of the image. */
  async holds(image: TestImage): Promise<boolean> {
    for (const blob of image.blobs) {
      const response = await fetch(`${this.registryUrl}/v2/${image.repository}/blobs/${blob.digest}?ns=demo.local`, { method: 'HEAD' }).catch(() => undefined)
      if (!response?.ok) return false
    }
    return true
  }

  lastLog(lines = 20): string {
    try {
      return readFileSync(this.logPath(), 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
    } catch {
      return '(no log)'
    }
  }

  async stop(): Promise<void> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
    await this.exited
    clearTimeout(timer)
  }
}

export async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(POLL_MS)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** Pulls an image through a node's mirror with its /debug/measure endpoint; one summary line. */
export async function measureThrough(node: DemoNode, reference: string): Promise<string> {
  const response = await fetch(`${node.metricsUrl}/debug/measure`, { method: 'POST', body: JSON.stringify({ reference }) })
  const result = (await response.json()) as Measurement & { error?: string }
  if (!response.ok) return `failed: ${result.error ?? response.status}`
  const bySource = new Map<string, number>()
  for (const blob of result.blobs) for (const [source, bytes] of Object.entries(blob.sources)) bySource.set(source, (bySource.get(source) ?? 0) + bytes)
  const sources = [...bySource].map(([source, bytes]) => `${source} ${formatBytes(bytes)}`).join(', ')
  return `${formatBytes(result.bytes)} in ${result.seconds} s (${(result.bytes / 1e6 / result.seconds).toFixed(0)} MB/s), from ${sources}`
}
