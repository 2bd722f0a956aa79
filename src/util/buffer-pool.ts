import type { SignalOptions } from './abort.js'
import { every, systemClock, type Clock } from './clock.js'
import type { Service } from './service.js'
import { Wakeup } from './wakeup.js'

/** Smallest and largest buffers the pool keeps: a 16 KiB block up to the largest piece (4 MiB). */
export const POOL_MIN_BYTES = 16 * 1024
export const POOL_MAX_BYTES = 4 * 1024 * 1024
/** Most bytes of free buffers kept: a few pieces in flight to and from each of a few peers. */
export const POOL_FREE_BYTES = 32 * 1024 * 1024
/** Free buffers are dropped after this long without a buffer handed out. */
export const POOL_IDLE_MS = 30_000
/** Bytes handed out at once beyond which fetches that can wait do (`--piece-memory`). */
export const DEFAULT_PIECE_MEMORY = 64 * 1024 * 1024

export interface BufferPoolInit {
  freeBytes?: number
  idleMs?: number
  /** Bytes handed out and not given back beyond which `hasRoomFor` says no. */
  leasedBytes?: number
  /** Told the bytes handed out whenever they change. */
  onLeased?: (bytes: number) => void
}

/**
 * Reusable buffers for whole pieces fetched from peers and read for peers and clients. A fresh
 * piece-sized buffer per piece, alive until its answer is written, had V8 run a full collection
 * every few MB: on a GB, more CPU than reading and sending it. A buffer goes back with `release`
 * once nothing reads it any more; one never released (its answer was cut mid-write) is left to
 * the collector, and stops counting as handed out once collected. The bytes handed out are the
 * node's piece memory: fetches that can wait start only while it `hasRoomFor` them. An idle
 * pool lets its free buffers go (every `idleMs`, while started).
 */
export class BufferPool implements Service {
  private readonly free = new Map<number, ArrayBuffer[]>()
  private freeBytes = 0
  /** Size class of each buffer handed out and not yet given back. */
  private readonly leased = new WeakMap<ArrayBufferLike, number>()
  private leasedTotal = 0
  /** A buffer collected without being given back no longer counts as handed out. */
  private readonly lost = new FinalizationRegistry<number>((size) => this.returned(size))
  private readonly room = new Wakeup()
  private readonly maxLeasedBytes: number
  private readonly onLeased: ((bytes: number) => void) | undefined
  private lastAcquired = 0
  private stopTrimming: (() => void) | undefined
  private readonly clock: Clock
  private readonly maxFreeBytes: number
  private readonly idleMs: number

  constructor(components: { clock?: Clock } = {}, init: BufferPoolInit = {}) {
    this.clock = components.clock ?? systemClock
    this.maxFreeBytes = init.freeBytes ?? POOL_FREE_BYTES
    this.idleMs = init.idleMs ?? POOL_IDLE_MS
    this.maxLeasedBytes = init.leasedBytes ?? DEFAULT_PIECE_MEMORY
    this.onLeased = init.onLeased
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

  /** Bytes of the buffers handed out and not given back (counted by size class). */
  get leasedBytes(): number {
    return this.leasedTotal
  }

  /** Whether a buffer of `length` bytes more stays within the limit of bytes handed out (always, with none handed out). */
  hasRoomFor(length: number): boolean {
    return this.leasedTotal === 0 || this.leasedTotal + sizeClass(length) <= this.maxLeasedBytes
  }

  /** Resolves when a buffer is next given back (or collected), or when `signal` aborts. */
  released(options: SignalOptions = {}): Promise<void> {
    return this.room.wait({ signal: options.signal })
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
    this.leasedTotal += size
    this.onLeased?.(this.leasedTotal)
    this.lost.register(buffer.buffer, size, buffer.buffer)
    return buffer
  }

  /** Gives back the memory under `buffer` (any view of it); others, and a second release, are ignored. */
  release(buffer: Uint8Array): void {
    const size = this.leased.get(buffer.buffer)
    if (size === undefined) return
    this.leased.delete(buffer.buffer)
    this.lost.unregister(buffer.buffer)
    this.returned(size)
    if (this.freeBytes + size > this.maxFreeBytes) return
    let list = this.free.get(size)
    if (!list) this.free.set(size, (list = []))
    list.push(buffer.buffer as ArrayBuffer)
    this.freeBytes += size
  }

  private returned(size: number): void {
    this.leasedTotal -= size
    this.onLeased?.(this.leasedTotal)
    this.room.notify()
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
