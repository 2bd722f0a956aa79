import { every, systemClock, type Clock } from './clock.js'
import type { Service } from './service.js'

/** Smallest and largest buffers the pool keeps: a 16 KiB block up to the largest piece (4 MiB). */
export const POOL_MIN_BYTES = 16 * 1024
export const POOL_MAX_BYTES = 4 * 1024 * 1024
/** Most bytes of free buffers kept: a few pieces in flight to and from each of a few peers. */
export const POOL_FREE_BYTES = 32 * 1024 * 1024
/** Free buffers are dropped after this long without a buffer handed out. */
export const POOL_IDLE_MS = 30_000

export interface BufferPoolInit {
  freeBytes?: number
  idleMs?: number
}

/**
 * Reusable buffers for whole pieces read for peers. A fresh piece-sized buffer per piece, alive
 * until its answer is written, had V8 run a full collection every few MB: on a GB, more CPU than
 * reading and sending it. A buffer goes back with `release` once nothing reads it any more; one
 * never released (its answer was cut mid-write) is left to the collector. An idle
 * pool lets its free buffers go (every `idleMs`, while started).
 */
export class BufferPool implements Service {
  private readonly free = new Map<number, ArrayBuffer[]>()
  private freeBytes = 0
  /** Size class of each buffer handed out and not yet given back. */
  private readonly leased = new WeakMap<ArrayBufferLike, number>()
  private lastAcquired = 0
  private stopTrimming: (() => void) | undefined
  private readonly clock: Clock
  private readonly maxFreeBytes: number
  private readonly idleMs: number

  constructor(components: { clock?: Clock } = {}, init: BufferPoolInit = {}) {
    this.clock = components.clock ?? systemClock
    this.maxFreeBytes = init.freeBytes ?? POOL_FREE_BYTES
    this.idleMs = init.idleMs ?? POOL_IDLE_MS
  }

  start(): void {
    this.stopTrimming ??= every(this.clock, this.idleMs, async () => {
      if (this.clock.now() - this.lastAcquired >= this.idleMs) this.drop()
    })
  }

  stop(): void {
    this.stopTrimming?.()
    this.stopTrimming = undefined
    this.drop()
  }

  /** Bytes of free buffers held now. */
  get heldBytes(): number {
    return this.freeBytes
  }

  /** `length` bytes (old contents still there), or undefined if the length is outside the pool's sizes. */
  acquire(length: number): Buffer | undefined {
    if (length < 1 || length > POOL_MAX_BYTES) return undefined
    this.lastAcquired = this.clock.now()
    const size = sizeClass(length)
    const memory = this.free.get(size)?.pop()
    if (memory) this.freeBytes -= size
    const buffer = memory ? Buffer.from(memory, 0, length) : Buffer.allocUnsafeSlow(size).subarray(0, length)
    this.leased.set(buffer.buffer, size)
    return buffer
  }

  /** Gives back the memory under `buffer` (any view of it); others, and a second release, are ignored. */
  release(buffer: Uint8Array): void {
    const size = this.leased.get(buffer.buffer)
    if (size === undefined) return
    this.leased.delete(buffer.buffer)
    if (this.freeBytes + size > this.maxFreeBytes) return
    let list = this.free.get(size)
    if (!list) this.free.set(size, (list = []))
    list.push(buffer.buffer as ArrayBuffer)
    this.freeBytes += size
  }

  private drop(): void {
    this.free.clear()
    this.freeBytes = 0
  }
}

/** The power of two at or above `length`, at least POOL_MIN_BYTES. */
function sizeClass(length: number): number {
  let size = POOL_MIN_BYTES
  while (size < length) size *= 2
  return size
}
