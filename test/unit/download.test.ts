import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DownloadFailedError, StallError, URGENT_AFTER_MS } from '../../src/swarm/download.js'
import { ManualClock } from '../support/clock.js'
import { blobWithMetainfo, downloadOf } from '../support/swarm-fixtures.js'

const PIECE = 256 * 1024

describe('Download', () => {
  it('wakes a reader when its piece is verified, and only then', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(3 * PIECE)
    const critical: number[] = []
    const subject = await downloadOf(bytes, metainfo, { onCritical: (piece) => critical.push(piece) })
    try {
      let woke = false
      const waiting = subject.download.waitForPiece(1, 10_000).then(() => { woke = true })
      assert.deepEqual(critical, [1])
      await subject.deliver(0)
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(woke, false)
      await subject.deliver(1)
      await waiting
      assert.equal(subject.download.readableBytes(0, 10 * PIECE), 2 * PIECE)
    } finally {
      await subject.cleanup()
    }
  })

  it('settles the verdict true once every piece is in and the blob hashes to its digest', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(2 * PIECE + 100)
    const subject = await downloadOf(bytes, metainfo)
    try {
      for (const piece of [2, 0, 1]) await subject.deliver(piece)
      assert.equal(await subject.download.verdict, true)
      assert.ok(subject.download.complete)
      assert.ok((await subject.download.read(0, bytes.length)).equals(bytes))
    } finally {
      await subject.cleanup()
    }
  })

  it('settles the verdict false when the stored bytes do not hash to the digest', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(2 * PIECE)
    const subject = await downloadOf(bytes, metainfo)
    try {
      await subject.deliver(0)
      await subject.deliver(1, Buffer.alloc(PIECE, 7))
      assert.equal(await subject.download.verdict, false)
    } finally {
      await subject.cleanup()
    }
  })

  it('marks a piece urgent after URGENT_AFTER_MS and stalls after exactly the stall time without progress', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(2 * PIECE)
    const clock = new ManualClock()
    const urgent: number[] = []
    const subject = await downloadOf(bytes, metainfo, { clock, onUrgent: (piece) => urgent.push(piece) })
    try {
      const waiting = subject.download.waitForPiece(0, 5_000)
      const outcome = waiting.then(() => 'verified', (err: Error) => err)
      clock.advance(URGENT_AFTER_MS - 1)
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(urgent, [])
      clock.advance(1)
      await new Promise((resolve) => setImmediate(resolve))
      assert.deepEqual(urgent, [0])
      clock.advance(5_000 - URGENT_AFTER_MS)
      assert.ok((await outcome) instanceof StallError)
    } finally {
      await subject.cleanup()
    }
  })

  it('restarts the stall deadline whenever another piece arrives', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(3 * PIECE)
    const clock = new ManualClock()
    const subject = await downloadOf(bytes, metainfo, { clock })
    try {
      const outcome = subject.download.waitForPiece(2, 1_000).then(() => 'verified', (err: Error) => err.name)
      clock.advance(900)
      await subject.deliver(0)
      clock.advance(900)
      await new Promise((resolve) => setImmediate(resolve))
      await subject.deliver(2)
      assert.equal(await outcome, 'verified')
    } finally {
      await subject.cleanup()
    }
  })

  it('fails waiting readers with the error, and honours their abort signal', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(PIECE)
    const subject = await downloadOf(bytes, metainfo)
    try {
      const controller = new AbortController()
      const aborted = subject.download.waitForPiece(0, 60_000, { signal: controller.signal })
      controller.abort(new Error('client went away'))
      await assert.rejects(aborted, /client went away/)
      const failed = subject.download.waitForPiece(0, 60_000)
      subject.download.fail(new DownloadFailedError(metainfo.digest, 'test'))
      await assert.rejects(failed, DownloadFailedError)
      assert.equal(await subject.download.verdict, false)
    } finally {
      await subject.cleanup()
    }
  })
})
