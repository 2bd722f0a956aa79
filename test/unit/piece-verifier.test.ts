import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { PieceVerifier, VerifierFailedError } from '../../src/swarm/piece-verifier.js'

const sha1 = (bytes: Uint8Array): Buffer => createHash('sha1').update(bytes).digest()

describe('SHA-1 of whole pieces on worker threads', () => {
  it('vouches for a matching piece and refuses a changed one, leaving the caller\'s bytes as they were', async () => {
    const verifier = new PieceVerifier({}, { threads: 2 })
    try {
      const piece = randomBytes(1024 * 1024)
      const expected = sha1(piece)
      const sent = Buffer.from(piece)
      assert.equal(await verifier.check(sent, expected), true)
      assert.ok(sent.equals(piece), 'the caller keeps its buffer')
      const bad = Buffer.from(piece)
      bad[4096] ^= 1
      assert.equal(await verifier.check(bad, expected), false)
      assert.equal(await verifier.check(piece.subarray(0, piece.length - 1), expected), false, 'a short piece does not match')
    } finally {
      await verifier.stop()
    }
  })

  it('checks the bytes as they were when handed over, though the caller reuses its buffer at once', async () => {
    const verifier = new PieceVerifier({}, { threads: 1 })
    try {
      const pieces = [randomBytes(300_000), randomBytes(300_000), randomBytes(100_000)]
      const reused = Buffer.alloc(300_000)
      const checks = pieces.map((piece) => {
        piece.copy(reused)
        const check = verifier.check(reused.subarray(0, piece.length), sha1(piece))
        reused.fill(0)
        return check
      })
      assert.deepEqual(await Promise.all(checks), [true, true, true])
      // Memory handed back is used again: later checks of other sizes still see only their own bytes.
      const small = randomBytes(1000)
      assert.equal(await verifier.check(small, sha1(small)), true)
    } finally {
      await verifier.stop()
    }
  })

  it('answers each of many pieces checked at once over its threads', async () => {
    const verifier = new PieceVerifier({}, { threads: 3 })
    try {
      const pieces = Array.from({ length: 24 }, (_, i) => randomBytes(64 * 1024 + i))
      const results = await Promise.all(pieces.map((piece, i) => verifier.check(piece, i % 5 === 0 ? sha1(piece.subarray(1)) : sha1(piece))))
      assert.deepEqual(results, pieces.map((_, i) => i % 5 !== 0))
    } finally {
      await verifier.stop()
    }
  })

  it('fails the pieces it holds when stopped, refuses new ones, and works again once started', async () => {
    const verifier = new PieceVerifier({}, { threads: 1 })
    const piece = randomBytes(4 * 1024 * 1024)
    const held = verifier.check(piece, sha1(piece))
    await verifier.stop()
    await assert.rejects(held, VerifierFailedError)
    await assert.rejects(verifier.check(piece, sha1(piece)), VerifierFailedError)
    await verifier.stop()
    verifier.start()
    assert.equal(await verifier.check(piece, sha1(piece)), true)
    await verifier.stop()
  })
})
