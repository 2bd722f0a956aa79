import { createHash } from 'node:crypto'
import { open, rm, type FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { Digest } from '../oci/digest.js'
import type { ByteRange } from '../oci/range.js'
import { systemClock, type Clock } from '../util/clock.js'
import { ShoalError } from '../util/errors.js'
import { readExactly } from '../util/read-exactly.js'
import { Wakeup } from '../util/wakeup.js'

export class UpstreamBodyError extends ShoalError {}
/** The bytes sent are not the blob: longer than announced, or not hashing to the digest. The sender lied or relayed a lie. */
export class BodyMismatchError extends UpstreamBodyError {}

/** Largest read a follower makes from the file at once. */
const READ_BYTES = 1024 * 1024

export interface GrowingBlobInit {
  path: string
  digest: Digest
  /** The blob's length as upstream announced it; a body that ends short or runs long fails. */
  size: number
  /** A follower that gets no new byte for this long is ended with an error. */
  stallMs: number
}

/**
 * A blob written to a file as it arrives from upstream while any number of followers read it:
 * each follower starts where it asked (a late one from the start) and then follows the tail.
 * SHA-256 is computed as the bytes arrive; the last byte of the blob is released only once the
 * whole blob matched its digest, so no follower's response ends cleanly with wrong bytes. A
 * body that fails (cut, too short, too long, wrong digest) fails every follower and removes
 * the file.
 */
export class GrowingBlob {
  private handle: FileHandle | undefined
  private arrived = 0
  private failure: Error | undefined
  private matched = false
  private readers = 0
  private readonly changed: Wakeup
  private readonly clock: Clock

  constructor(private readonly init: GrowingBlobInit, components: { clock?: Clock } = {}) {
    this.clock = components.clock ?? systemClock
    this.changed = new Wakeup(this.clock)
  }

  /** Followers reading now: the file is removed only when there are none. */
  get followers(): number {
    return this.readers
  }

  /** Bytes written so far. */
  get written(): number {
    return this.arrived
  }

  /** True once every byte arrived and hashed to the digest. */
  get verified(): boolean {
    return this.matched
  }

  /** Writes `body` to the file, hashing it; resolves when the blob is complete and verified, rejects otherwise. */
  async write(body: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void> {
    const hash = createHash('sha256')
    try {
      this.handle = await open(this.init.path, 'w+')
      for await (const chunk of body) {
        if (this.arrived + chunk.length > this.init.size) throw new BodyMismatchError(`upstream sent more than the ${this.init.size} bytes it announced for ${this.init.digest}`)
        hash.update(chunk)
        await this.handle.write(chunk, 0, chunk.length, this.arrived)
        this.arrived += chunk.length
        this.changed.notify()
      }
      if (this.arrived !== this.init.size) throw new UpstreamBodyError(`upstream ended ${this.init.digest} after ${this.arrived} of ${this.init.size} bytes`)
      if (`sha256:${hash.digest('hex')}` !== this.init.digest) throw new BodyMismatchError(`the body upstream sent does not hash to ${this.init.digest}`)
      this.matched = true
      this.changed.notify()
    } catch (err) {
      await this.fail(err as Error)
      throw err
    }
  }

  /** The bytes of `range` (the whole blob if none) as they arrive, the blob's last byte only once verified. */
  follow(range: ByteRange = { start: 0, end: this.init.size - 1 }): Readable {
    const blob = this
    const stream = Readable.from((async function* () {
      let position = range.start
      while (position <= range.end) {
        const available = await blob.waitForBytes(position)
        const length = Math.min(READ_BYTES, available - position, range.end + 1 - position)
        yield await readExactly(blob.handle!, position, length, blob.init.path)
        position += length
      }
    })(), { objectMode: false })
    this.readers++
    stream.once('close', () => { this.readers-- })
    return stream
  }

  /** Removes the file (once no follower reads it: after the blob is handed over, or abandoned). */
  async remove(): Promise<void> {
    const handle = this.handle
    this.handle = undefined
    await handle?.close().catch(() => {})
    await rm(this.init.path, { force: true })
  }

  /** How far a follower at `position` may read: what arrived, all but the last byte until the blob is verified. */
  private async waitForBytes(position: number): Promise<number> {
    let progressAt = this.arrived
    let stalledAt = this.clock.now() + this.init.stallMs
    for (;;) {
      if (this.failure) throw this.failure
      const releasable = this.matched ? this.init.size : Math.min(this.arrived, this.init.size - 1)
      if (releasable > position && this.handle) return releasable
      if (this.arrived !== progressAt) {
        progressAt = this.arrived
        stalledAt = this.clock.now() + this.init.stallMs
      }
      const remaining = stalledAt - this.clock.now()
      if (remaining <= 0) throw new UpstreamBodyError(`no byte of ${this.init.digest} from upstream for ${this.init.stallMs} ms`)
      await this.changed.wait({ timeoutMs: remaining })
    }
  }

  private async fail(error: Error): Promise<void> {
    this.failure ??= error
    this.changed.notify()
    await this.remove()
  }
}
