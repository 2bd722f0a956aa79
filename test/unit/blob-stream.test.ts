import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { collect } from '../../src/content/read.js'
import { DigestMismatchError, SwarmBlobStream } from '../../src/swarm/blob-stream.js'
import { blobWithMetainfo, downloadOf } from '../support/swarm-fixtures.js'

const PIECE = 256 * 1024

describe('SwarmBlobStream', () => {
  it('streams a range in order as its pieces are verified, whatever order they arrive in', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(4 * PIECE + 17)
    const subject = await downloadOf(bytes, metainfo)
    try {
      const range = { start: PIECE - 5, end: 3 * PIECE + 9 }
      const stream = new SwarmBlobStream(subject.download, range, 10_000)
      const body = collect(stream, bytes.length)
      for (const piece of [3, 1, 0, 2]) await subject.deliver(piece)
      assert.ok((await body).equals(bytes.subarray(range.start, range.end + 1)))
    } finally {
      await subject.cleanup()
    }
  })

  it('holds back the last bytes of the blob until the whole blob matches its digest', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(2 * PIECE)
    const subject = await downloadOf(bytes, metainfo)
    try {
      const stream = new SwarmBlobStream(subject.download, { start: PIECE, end: 2 * PIECE - 1 }, 10_000)
      const received: Buffer[] = []
      stream.on('data', (chunk: Buffer) => received.push(chunk))
      const ended = new Promise<void>((resolve, reject) => { stream.on('end', resolve); stream.on('error', reject) })
      // The stream reaches the wait for the whole blob before any byte of the last piece goes out.
      const firstData = new Promise<string>((resolve) => stream.once('data', () => resolve('bytes of the last piece went out')))
      const holding = new Promise<string>((resolve) => {
        const waitForAll = subject.download.waitForAll.bind(subject.download)
        subject.download.waitForAll = (...args) => {
          resolve('held')
          return waitForAll(...args)
        }
      })
      await subject.deliver(1)
      assert.equal(await Promise.race([holding, firstData]), 'held')
      assert.equal(received.length, 0, 'nothing of the last piece before the digest is checked')
      await subject.deliver(0)
      await ended
      assert.ok(Buffer.concat(received).equals(bytes.subarray(PIECE)))
    } finally {
      await subject.cleanup()
    }
  })

  it('errors instead of ending cleanly when the blob does not match its digest', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(2 * PIECE)
    const subject = await downloadOf(bytes, metainfo)
    try {
      const stream = new SwarmBlobStream(subject.download, { start: 0, end: 2 * PIECE - 1 }, 10_000)
      const body = collect(stream, bytes.length)
      await subject.deliver(0)
      await subject.deliver(1, Buffer.alloc(PIECE, 1))
      await assert.rejects(body, DigestMismatchError)
    } finally {
      await subject.cleanup()
    }
  })

  it('counts itself as a consumer of the download while open', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(PIECE)
    const subject = await downloadOf(bytes, metainfo)
    try {
      const stream = new SwarmBlobStream(subject.download, { start: 0, end: PIECE - 1 }, 10_000)
      assert.equal(subject.download.consumers, 1)
      stream.destroy()
      assert.equal(subject.download.consumers, 0)
    } finally {
      await subject.cleanup()
    }
  })
})
