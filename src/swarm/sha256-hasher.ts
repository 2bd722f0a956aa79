import { Worker } from 'node:worker_threads'
import { ShoalError } from '../util/errors.js'

export class HasherFailedError extends ShoalError {
  constructor(why: string, options?: ErrorOptions) {
    super(`the SHA-256 worker failed: ${why}`, options)
  }
}

/** Bytes posted to the worker and not hashed yet, over all downloads: `update` waits above it. */
export const MAX_QUEUED_BYTES = 16 * 1024 * 1024

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

  private readonly id = Sha256Hasher.nextId++
  /** The worker holding this hash: if it is gone, so are the bytes posted to it. */
  private readonly worker = Sha256Hasher.thread()
  private ended = false

  /** Resolves once the worker has room for more (at once, mostly). */
  update(bytes: Uint8Array): Promise<void> {
    const copy = new Uint8Array(bytes)
    // Posting detaches the copy: its length is 0 afterwards.
    this.worker.postMessage({ id: this.id, bytes: copy }, [copy.buffer])
    if (Sha256Hasher.worker !== this.worker) return Promise.resolve()
    Sha256Hasher.queuedBytes += bytes.length
    if (Sha256Hasher.queuedBytes <= MAX_QUEUED_BYTES) return Promise.resolve()
    return new Promise((resolve) => Sha256Hasher.drainWaiters.push(resolve))
  }

  /** The hex digest of everything posted; once. */
  digest(): Promise<string> {
    this.ended = true
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
    this.ended = true
    this.worker.postMessage({ id: this.id, drop: true })
  }

  /** Stops the worker: hashes in progress then fail with HasherFailedError; the next hasher starts a new one. */
  static async stop(): Promise<void> {
    const worker = this.worker
    this.worker = undefined
    await worker?.terminate()
  }

  private static hashed(bytes: number): void {
    this.queuedBytes = Math.max(0, this.queuedBytes - bytes)
    while (this.queuedBytes <= MAX_QUEUED_BYTES && this.drainWaiters.length > 0) this.drainWaiters.shift()!()
  }

  private static thread(): Worker {
    if (this.worker) return this.worker
    const worker = this.worker = new Worker(new URL('./sha256-worker.js', import.meta.url))
    worker.on('message', ({ id, hex, hashed }: { id: number; hex: string; hashed?: number }) => {
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
