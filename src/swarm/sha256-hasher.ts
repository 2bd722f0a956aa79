import { Worker } from 'node:worker_threads'
import { ShoalError } from '../util/errors.js'

export class HasherFailedError extends ShoalError {
  constructor(why: string, options?: ErrorOptions) {
    super(`the SHA-256 worker failed: ${why}`, options)
  }
}

/** Bytes posted to the worker and not hashed yet, over all downloads: `update` waits above it (two pieces). */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024
/** Memory handed back by the worker kept for the next copies, and the smallest made (a piece). */
const MAX_SPARE = 3
const SPARE_MIN_BYTES = 4 * 1024 * 1024

/**
 * SHA-256 of a download computed on a worker thread, so a pull uses a second core for it while
 * the main thread moves bytes. Bytes are copied before they are posted (the caller may reuse its
 * buffer at once); the digest comes back in order after every byte posted before `digest`.
 * One worker serves every download of the process; it is started on first use and lets the
 * process exit while idle. A worker that falls behind holds back its callers, so the copies
 * waiting for it stay bounded however many downloads run.
 */
export class Sha256Hasher {
  private static worker: Worker | undefined
  private static nextId = 1
  private static readonly waiting = new Map<number, { resolve: (hex: string) => void; reject: (err: Error) => void }>()
  private static queuedBytes = 0
  private static readonly drainWaiters: (() => void)[] = []
  /** Memory the worker handed back after hashing it, to copy the next bytes into (no garbage on either side). */
  private static readonly spare: ArrayBuffer[] = []
  /** Hashes started and not finished or dropped: with none, the spare memory goes. */
  private static active = 0

  private readonly id = Sha256Hasher.nextId++
  /** The worker holding this hash: if it is gone, so are the bytes posted to it. */
  private readonly worker = Sha256Hasher.thread()
  private ended = false

  constructor() {
    Sha256Hasher.active++
  }

  /** Resolves once the worker has room for more (at once, mostly). */
  update(bytes: Uint8Array): Promise<void> {
    const copy = Sha256Hasher.copyOf(bytes)
    // Posting detaches the copy: its length is 0 afterwards.
    this.worker.postMessage({ id: this.id, bytes: copy }, [copy.buffer as ArrayBuffer])
    if (Sha256Hasher.worker !== this.worker) return Promise.resolve()
    Sha256Hasher.queuedBytes += bytes.length
    if (Sha256Hasher.queuedBytes <= MAX_QUEUED_BYTES) return Promise.resolve()
    return new Promise((resolve) => Sha256Hasher.drainWaiters.push(resolve))
  }

  /** The hex digest of everything posted; once. */
  digest(): Promise<string> {
    this.end()
    if (Sha256Hasher.worker !== this.worker) return Promise.reject(new HasherFailedError('it stopped while the blob was hashed'))
    return new Promise((resolve, reject) => {
      Sha256Hasher.waiting.set(this.id, { resolve, reject })
      this.worker.ref()
      this.worker.postMessage({ id: this.id, end: true })
    })
  }

  /** Forgets a hash that will not be finished (a failed download). */
  drop(): void {
    if (this.ended) return
    this.end()
    this.worker.postMessage({ id: this.id, drop: true })
  }

  /** Stops the worker: hashes in progress then fail with HasherFailedError; the next hasher starts a new one. */
  static async stop(): Promise<void> {
    const worker = this.worker
    this.worker = undefined
    await worker?.terminate()
  }

  private end(): void {
    if (!this.ended && --Sha256Hasher.active === 0) Sha256Hasher.spare.length = 0
    this.ended = true
  }

  /** `bytes` copied into spare memory large enough, else into new memory. */
  private static copyOf(bytes: Uint8Array): Uint8Array {
    const at = this.spare.findIndex((memory) => memory.byteLength >= bytes.length)
    const memory = at >= 0 ? this.spare.splice(at, 1)[0]! : new ArrayBuffer(Math.max(bytes.length, SPARE_MIN_BYTES))
    const copy = new Uint8Array(memory, 0, bytes.length)
    copy.set(bytes)
    return copy
  }

  private static hashed(bytes: number): void {
    this.queuedBytes = Math.max(0, this.queuedBytes - bytes)
    while (this.queuedBytes <= MAX_QUEUED_BYTES && this.drainWaiters.length > 0) this.drainWaiters.shift()!()
  }

  private static thread(): Worker {
    if (this.worker) return this.worker
    const worker = this.worker = new Worker(new URL('./sha256-worker.js', import.meta.url))
    worker.on('message', ({ id, hex, hashed, memory }: { id: number; hex: string; hashed?: number; memory?: ArrayBuffer }) => {
      if (memory && this.active > 0 && this.spare.length < MAX_SPARE) this.spare.push(memory)
      if (hashed !== undefined) return this.hashed(hashed)
      const waiter = this.waiting.get(id)
      this.waiting.delete(id)
      if (this.waiting.size === 0) worker.unref()
      waiter?.resolve(hex)
    })
    const fail = (err: Error): void => {
      if (this.worker === worker) this.worker = undefined
      for (const waiter of this.waiting.values()) waiter.reject(new HasherFailedError(err.message, { cause: err }))
      this.waiting.clear()
      this.hashed(this.queuedBytes)
    }
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`exited with ${code}`)))
    // After the listeners: adding one refs the worker's port again.
    worker.unref()
    return worker
  }
}
