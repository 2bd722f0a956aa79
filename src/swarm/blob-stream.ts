import { ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { ByteRange } from '../oci/range.js'
import { READ_BATCH_BYTES, type Download } from './download.js'
import { ShoalError } from '../util/errors.js'

export class DigestMismatchError extends ShoalError {
  constructor(digest: string) {
    super(`assembled blob does not hash to ${digest}; aborting the response`)
  }
}

/**
 * The bytes of a range of a download, in order, as their pieces are verified, read from the
 * download file in large batches. The last bytes of the blob are only released once the whole
 * blob has been checked against its SHA-256 digest, and with `holdEndUntilVerified` the last
 * bytes of any range too (for metainfo nobody vouched for: the response never ends cleanly
 * unless the blob is the digest's). Destroys itself (so the HTTP connection is cut and
 * containerd retries with Range) when no piece arrives for `stallMs`, or the digest fails.
 */
export class SwarmBlobStream extends Readable {
  private position: number
  private pumping = false
  private readonly controller = new AbortController()
  private readonly leave: () => void
  /** The HTTP response this stream is piped into, if it is: the only case where kept pieces are borrowed. */
  private response: ServerResponse | undefined
  /** Kept pieces whose views were pushed and may not have reached the kernel yet, with the count of bytes pushed once each view was. */
  private readonly loans: { bytes: Buffer; until: number }[] = []

  constructor(private readonly download: Download, private readonly range: ByteRange, private readonly stallMs: number, private readonly holdEndUntilVerified = false) {
    super({ highWaterMark: READ_BATCH_BYTES })
    this.position = range.start
    this.leave = download.addReader()
  }

  /** Waits until the first bytes can be sent: before this, no HTTP headers go out. */
  async firstBytesReady(): Promise<void> {
    await this.download.waitForPiece(this.pieceAt(this.position), this.stallMs, { signal: this.controller.signal })
  }

  override _read(): void {
    if (this.pumping) return
    this.pumping = true
    this.pump().then(() => { this.pumping = false }, (err: Error) => this.destroy(err))
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.controller.abort()
    this.leave()
    // Once the stream has ended, the response's 'finish' gives the loans back; a stream cut
    // short may have writes pending on these views, so they are left to the collector.
    if (error || !this.readableEnded) this.loans.length = 0
    callback(error)
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    if (destination instanceof ServerResponse && !this.response) {
      const response = this.response = destination
      response.on('drain', () => this.settleLoans())
      response.once('finish', () => this.settleLoans())
    }
    return super.pipe(destination, options)
  }

  /**
   * Gives back the kept pieces whose views have reached the kernel: every byte pushed but those
   * still in this stream or in the response, whose length counts its socket's writes not yet done
   * (a write the kernel took at once is done when it returns; the head's bytes count too, so
   * this errs on the side of keeping).
   */
  private settleLoans(): void {
    const response = this.response
    if (!response || this.loans.length === 0) return
    const reached = response.writableFinished ? Number.POSITIVE_INFINITY : this.position - this.range.start - this.readableLength - response.writableLength
    while (this.loans.length > 0 && this.loans[0]!.until <= reached) this.download.giveBack(this.loans.shift()!.bytes)
  }

  /** Records that a view of `bytes` ending `length` bytes from here is about to be pushed. */
  private lend(bytes: Buffer, length: number): void {
    this.loans.push({ bytes, until: this.position + length - this.range.start })
  }

  private async pump(): Promise<void> {
    const { length, digest } = this.download.metainfo
    while (this.position <= this.range.end) {
      this.settleLoans()
      await this.download.waitForPiece(this.pieceAt(this.position), this.stallMs, { signal: this.controller.signal })
      const size = this.download.readableBytes(this.position, Math.min(READ_BATCH_BYTES, this.range.end + 1 - this.position))
      if (this.position + size === length || (this.holdEndUntilVerified && this.position + size === this.range.end + 1)) {
        await this.download.waitForAll(this.stallMs, { signal: this.controller.signal })
        if (!(await this.download.verdict)) throw new DigestMismatchError(digest)
      }
      const chunk = this.fromMemory(size) ?? await this.fromFile(size)
      if (this.destroyed) return
      this.position += chunk.length
      this.download.touch()
      if (!this.push(chunk)) return
    }
    this.push(null)
  }

  /** The next `size` bytes from the file: into a buffer lent by the download's pool when they go to a response. */
  private async fromFile(size: number): Promise<Buffer> {
    if (!this.response) return this.download.read(this.position, size)
    const bytes = await this.download.readLent(this.position, size)
    this.lend(bytes, bytes.length)
    return bytes
  }

  /** The next bytes (at most `size`) from a verified piece still in memory, if it is. */
  private fromMemory(size: number): Buffer | undefined {
    const { pieceLength } = this.download.metainfo
    const piece = this.pieceAt(this.position)
    const kept = this.response ? this.download.lendRecentPiece(piece) : this.download.recentPiece(piece)
    if (!kept) return undefined
    const offset = this.position - piece * pieceLength
    const view = kept.subarray(offset, offset + Math.min(size, kept.length - offset))
    if (this.response) this.lend(kept, view.length)
    return view
  }

  private pieceAt(position: number): number {
    return Math.floor(position / this.download.metainfo.pieceLength)
  }
}
