import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { ShoalError } from '../util/errors.js'
import type { Service } from '../util/service.js'

export class VerifierFailedError extends ShoalError {
  constructor(why: string, options?: ErrorOptions) {
    super(`the piece verification thread failed: ${why}`, options)
  }
}

/**
 * Threads checking pieces: all but one core (the main thread's), at most 4; none below 4 cores,
 * where the pull's other threads and the node's other processes already take every core (on
 * 2 vCPU a thread made the requester ~0.5–1 CPU-s per GB dearer and 4–9 % slower, docs/benchmarks.md).
 */
export const DEFAULT_VERIFY_THREADS = availableParallelism() < 4 ? 0 : Math.min(4, availableParallelism() - 1)

export interface PieceVerifierInit {
  threads?: number
}

/** Memory handed back by the threads kept for the next copies (a few pieces in flight). */
const MAX_SPARE = 8
/** Spare memory is let go after this long without a check. */
export const SPARE_IDLE_MS = 30_000

interface Pending {
  resolve: (matches: boolean) => void
  reject: (err: Error) => void
}

interface Thread {
  worker: Worker
  pending: Map<number, Pending>
}

/**
 * Checks whole pieces against their SHA-1 on worker threads, so the main thread of a pull only
 * moves bytes. A piece is copied into memory a thread handed back before (moving the piece's own
 * memory there and back made V8 count a new allocation each time, and collect more); the caller
 * keeps its buffer. Threads start on first use, let the process exit while idle, and are replaced
 * when one dies (the pieces it held fail with VerifierFailedError: check them another way).
 */
export class PieceVerifier implements Service {
  private readonly threads: (Thread | undefined)[]
  private nextId = 1
  private stopped = false
  private readonly spare: ArrayBuffer[] = []
  private lastCheck = 0
  private trimTimer: NodeJS.Timeout | undefined

  constructor(_components: object = {}, init: PieceVerifierInit = {}) {
    this.threads = new Array<Thread | undefined>(Math.max(1, init.threads ?? DEFAULT_VERIFY_THREADS)).fill(undefined)
  }

  start(): void {
    this.stopped = false
  }

  /** Whether `bytes` hash to `expected` (20 bytes). */
  check(bytes: Uint8Array, expected: Uint8Array): Promise<boolean> {
    if (this.stopped) return Promise.reject(new VerifierFailedError('the verifier is stopped'))
    const copy = this.copyOf(bytes)
    this.lastCheck = Date.now()
    const thread = this.leastBusy()
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      thread.pending.set(id, { resolve, reject })
      if (thread.pending.size === 1) thread.worker.ref()
      // A view is cloned with all of its memory: the 20 bytes alone go.
      thread.worker.postMessage({ id, bytes: copy, expected: new Uint8Array(expected) }, [copy.buffer as ArrayBuffer])
    })
  }

  private copyOf(bytes: Uint8Array): Uint8Array {
    const at = this.spare.findIndex((memory) => memory.byteLength >= bytes.length)
    const memory = at >= 0 ? this.spare.splice(at, 1)[0]! : new ArrayBuffer(bytes.length)
    const copy = new Uint8Array(memory, 0, bytes.length)
    copy.set(bytes)
    return copy
  }

  /** Stops the threads; pieces being checked fail with VerifierFailedError. Twice is harmless. */
  async stop(): Promise<void> {
    this.stopped = true
    this.spare.length = 0
    clearTimeout(this.trimTimer)
    this.trimTimer = undefined
    const running = this.threads.filter((thread) => thread !== undefined)
    this.threads.fill(undefined)
    await Promise.all(running.map(async (thread) => {
      await thread.worker.terminate()
      this.failAll(thread, new Error('stopped'))
    }))
  }

  /** Lets the spare memory go once no piece was checked for SPARE_IDLE_MS. */
  private trimWhenIdle(): void {
    if (this.trimTimer) return
    this.trimTimer = setTimeout(() => {
      this.trimTimer = undefined
      if (Date.now() - this.lastCheck >= SPARE_IDLE_MS) this.spare.length = 0
      else this.trimWhenIdle()
    }, SPARE_IDLE_MS).unref()
  }

  private leastBusy(): Thread {
    let best = 0
    for (let at = 0; at < this.threads.length; at++) {
      const thread = this.threads[at]
      if (!thread) return this.spawn(at)
      if (thread.pending.size < this.threads[best]!.pending.size) best = at
    }
    return this.threads[best]!
  }

  private spawn(at: number): Thread {
    const thread: Thread = { worker: new Worker(new URL('./sha1-worker.js', import.meta.url)), pending: new Map() }
    this.threads[at] = thread
    const { worker, pending } = thread
    worker.on('message', ({ id, matches, bytes }: { id: number; matches: boolean; bytes: Uint8Array }) => {
      const waiter = pending.get(id)
      pending.delete(id)
      if (pending.size === 0) worker.unref()
      if (!this.stopped && this.spare.length < MAX_SPARE) this.spare.push(bytes.buffer as ArrayBuffer)
      this.trimWhenIdle()
      waiter?.resolve(matches)
    })
    const fail = (err: Error): void => {
      if (this.threads[at] === thread) this.threads[at] = undefined
      this.failAll(thread, err)
    }
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`exited with ${code}`)))
    // After the listeners: adding one refs the worker's port again.
    worker.unref()
    return thread
  }

  private failAll(thread: Thread, err: Error): void {
    for (const waiter of thread.pending.values()) waiter.reject(new VerifierFailedError(err.message, { cause: err }))
    thread.pending.clear()
  }
}
