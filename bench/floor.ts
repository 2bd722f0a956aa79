/**
 * The Node floor: what a bare verified download costs in Node on this machine, with no P2P
 * logic. A node:http server streams the file; a client process GETs it, hashes each piece with
 * SHA-1 and the whole with SHA-256, and writes it at its offsets (bench/floor-peer.ts). It
 * spreads by about 2x between runs here, so the median of several runs is reported.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { median } from './numbers.js'
import { cpuSeconds, cpuTimes } from './proc.js'

const PEER = fileURLToPath(new URL('./floor-peer.js', import.meta.url))
const STARTUP_TIMEOUT_MS = 10_000
const DOWNLOAD_TIMEOUT_MS = 300_000

export interface FloorRun {
  seconds: number
  mbPerSecond: number
  clientCpuSecondsPerGb: number
  /** The part of it spent in the kernel. */
  clientKernelCpuSecondsPerGb: number
  serverCpuSecondsPerGb: number
}

export interface FloorInit {
  /** The file to serve. */
  file: string
  /** Where the client writes its copy (removed afterwards). */
  out: string
  pieceLength: number
  runs: number
  /** Its SHA-256 hex: every run must end with it. */
  sha256: string
  /** `taskset -c` list for the client, e.g. "0": the floor on one core. */
  clientCpus?: string
}

function firstLine(child: ChildProcess, what: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => reject(new Error(`${what}: no answer in ${timeoutMs} ms`)), timeoutMs)
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      const end = text.indexOf('\n')
      if (end >= 0) {
        clearTimeout(timer)
        resolve(text.slice(0, end))
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited with ${code} before answering`))
    })
  })
}

async function oneRun(init: FloorInit): Promise<FloorRun> {
  const server = spawn(process.execPath, [PEER, 'server', init.file], { stdio: ['ignore', 'pipe', 'inherit'] })
  let client: ChildProcess | undefined
  try {
    const port = Number(await firstLine(server, 'floor server', STARTUP_TIMEOUT_MS))
    const serverBefore = await cpuSeconds(server.pid!)
    const argv = [PEER, 'client', `http://127.0.0.1:${port}/`, init.out, String(init.pieceLength)]
    client = init.clientCpus
      ? spawn('taskset', ['-c', init.clientCpus, process.execPath, ...argv], { stdio: ['pipe', 'pipe', 'inherit'] })
      : spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'inherit'] })
    const running = client
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()))
    // The client waits for its stdin to close after answering, so its CPU time can still be read.
    const result = JSON.parse(await firstLine(running, 'floor client', DOWNLOAD_TIMEOUT_MS)) as { bytes: number; seconds: number; sha256: string }
    const clientCpu = await cpuTimes(running.pid!)
    const serverCpu = (await cpuSeconds(server.pid!)) - serverBefore
    running.stdin!.end()
    await exited
    if (result.sha256 !== init.sha256) throw new Error(`the floor client received other bytes (sha256 ${result.sha256})`)
    const gb = result.bytes / 1e9
    return {
      seconds: result.seconds, mbPerSecond: result.bytes / 1e6 / result.seconds,
      clientCpuSecondsPerGb: (clientCpu.user + clientCpu.kernel) / gb, clientKernelCpuSecondsPerGb: clientCpu.kernel / gb, serverCpuSecondsPerGb: serverCpu / gb,
    }
  } finally {
    if (client && client.exitCode === null) client.kill('SIGKILL')
    server.kill('SIGTERM')
    await rm(init.out, { force: true })
  }
}

/** The median of `runs` floor downloads, and the spread of the client's CPU per GB. */
export async function measureFloor(init: FloorInit): Promise<FloorRun & { runs: number; clientCpuRange: [number, number] }> {
  const runs: FloorRun[] = []
  for (let i = 0; i < init.runs; i++) runs.push(await oneRun(init))
  const cpu = runs.map((run) => run.clientCpuSecondsPerGb)
  return {
    runs: runs.length,
    seconds: median(runs.map((run) => run.seconds)),
    mbPerSecond: median(runs.map((run) => run.mbPerSecond)),
    clientCpuSecondsPerGb: median(cpu),
    clientKernelCpuSecondsPerGb: median(runs.map((run) => run.clientKernelCpuSecondsPerGb)),
    serverCpuSecondsPerGb: median(runs.map((run) => run.serverCpuSecondsPerGb)),
    clientCpuRange: [Math.min(...cpu), Math.max(...cpu)],
  }
}
