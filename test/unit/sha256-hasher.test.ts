import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { HasherFailedError, MAX_QUEUED_BYTES, Sha256Hasher } from '../../src/swarm/sha256-hasher.js'
import { blobWithMetainfo, downloadOf } from '../support/swarm-fixtures.js'

describe('SHA-256 on the worker thread', () => {
  it('hashes what was posted, in order, while the caller reuses its buffer at once', async () => {
    const parts = [randomBytes(1000), randomBytes(300_000), randomBytes(1)]
    const hasher = new Sha256Hasher()
    const reused = Buffer.alloc(300_000)
    for (const part of parts) {
      part.copy(reused)
      await hasher.update(reused.subarray(0, part.length))
      reused.fill(0)
    }
    assert.equal(await hasher.digest(), createHash('sha256').update(Buffer.concat(parts)).digest('hex'))
  })

  it('holds its callers back while the worker has more than its queue of bytes to hash', async () => {
    const hasher = new Sha256Hasher()
    const piece = randomBytes(1024 * 1024)
    const calls = MAX_QUEUED_BYTES / piece.length + 4
    const states = Array.from({ length: calls }, () => {
      const state = { settled: false }
      void hasher.update(piece).then(() => { state.settled = true })
      return state
    })
    await Promise.resolve()
    // The worker cannot answer before this turn ends: everything past the queue waits.
    assert.deepEqual(states.map((state) => state.settled), states.map((_, i) => i < MAX_QUEUED_BYTES / piece.length))
    const expected = createHash('sha256')
    for (let i = 0; i < calls; i++) expected.update(piece)
    assert.equal(await hasher.digest(), expected.digest('hex'))
    assert.ok(states.every((state) => state.settled))
  })

  it('a worker that stops mid-blob fails the download, instead of judging its bytes', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(3 * 256 * 1024)
    const subject = await downloadOf(bytes, metainfo)
    try {
      await subject.deliver(0)
      await Sha256Hasher.stop()
      await subject.deliver(1)
      await subject.deliver(2)
      assert.equal(await subject.download.verdict, false)
      assert.ok(subject.download.error instanceof HasherFailedError, `failed with ${subject.download.error}`)
      assert.equal(subject.download.digestMatches, undefined)
      // A new download gets a new worker.
      const again = new Sha256Hasher()
      await again.update(bytes)
      assert.equal(`sha256:${await again.digest()}`, metainfo.digest)
    } finally {
      await subject.cleanup()
    }
  })
})
