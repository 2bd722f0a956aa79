import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { constants, createWriteStream } from 'node:fs'
import { access } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export interface Managed {
  name: string
  child: ChildProcess
  logPath: string
  stop(): Promise<void>
}

/**
 * Starts a process with its output in a log file, in its own process group so that stopping
 * it also stops what it started. `stop()` sends SIGTERM, then SIGKILL after `graceMs`.
 */
export function startProcess(name: string, command: string, args: string[], logPath: string, options: SpawnOptions = {}): Managed {
  const log = createWriteStream(logPath, { flags: 'a' })
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  child.once('exit', () => running.delete(child))
  child.stdout?.pipe(log)
  child.stderr?.pipe(log)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let stopping: Promise<void> | undefined
  return {
    name, child, logPath,
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          signalGroup(child, 'SIGTERM')
          const timedOut = await Promise.race([exited.then(() => false), sleep(graceMs).then(() => true)])
          if (timedOut) signalGroup(child, 'SIGKILL')
          await exited
        }
        log.end()
      })()
      return stopping
    },
  } as Managed
}

/** Refuses with a clear error, saying how to install it, a command that is not on PATH. */
export async function requireCommand(command: string, debianPackage = command): Promise<void> {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter).filter(Boolean)) {
    try {
      await access(join(dir, command), constants.X_OK)
      return
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${command} is not installed: as root, bash test/support/install-packages.sh ${debianPackage}`)
}

/** Children still running: killed if this process exits or is told to stop, so none outlive a test. */
const running = new Set<ChildProcess>()

function killAll(): void {
  for (const child of running) signalGroup(child, 'SIGKILL')
}

process.once('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll()
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15))
  })
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal)
  } catch {
    child.kill(signal)
  }
}

/** Removes a test's temp dir, unless SHOAL_KEEP_TEST_DIRS=1 (then says where it is, logs and all). */
export async function removeTestDir(dir: string | undefined): Promise<void> {
  if (!dir) return
  if (process.env['SHOAL_KEEP_TEST_DIRS'] === '1') {
    process.stderr.write(`kept ${dir}\n`)
    return
  }
  const { rm } = await import('node:fs/promises')
  await rm(dir, { recursive: true, force: true })
}
