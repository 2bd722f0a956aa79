import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, type Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { sha256Digest } from '../../src/oci/digest.js'
import { GrowingBlob, UpstreamBodyError } from '../../src/upstream/growing-blob.js'
import { ManualClock } from '../support/clock.js'
import { eventually } from '../support/eventually.js'
import { patternBytes } from '../support/images.js'

const bytes = patternBytes(3 * 2 ** 20 + 11, 7, 2)
const digest = sha256Digest(bytes)

/** Reads a follower, counting what arrived so far; `done` settles with all of it or its error. */
function reader(stream: Readable) {
  const parts: Buffer[] = []
  let received = 0
  const done = (async () => {
    for await (const chunk of stream) {
      parts.push(chunk as Buffer)
      received += (chunk as Buffer).length
    }
    return Buffer.concat(parts)
  })()
  done.catch(() => {})
  return { done, received: () => received }
}

describe('a blob followed while it arrives from upstream', () => {
  let dir: string
  let count = 0
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'shoal-growing-')) })
  after(() => rm(dir, { recursive: true, force: true }))
  const blob = (init: { size?: number; digest?: string; stallMs?: number } = {}, clock?: ManualClock) =>
    new GrowingBlob({ path: join(dir, `blob-${++count}`), digest: (init.digest ?? digest) as never, size: init.size ?? bytes.length, stallMs: init.stallMs ?? 10_000 }, clock ? { clock } : {})

  it('gives every follower the whole blob, a late one from the start, and holds the last byte until it is verified', async () => {
    const subject = blob()
    const body = new PassThrough()
    const writing = subject.write(body)
    const early = reader(subject.follow())
    body.write(bytes.subarray(0, 2 ** 20))
    await eventually('the early follower has the first MiB', () => early.received() === 2 ** 20, 5_000, 5)
    const late = reader(subject.follow())
    body.write(bytes.subarray(2 ** 20))
    await eventually('both followers have all but the last byte', () => early.received() === bytes.length - 1 && late.received() === bytes.length - 1, 5_000, 5)
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(early.received(), bytes.length - 1, 'the last byte left before the body ended and was verified')
    body.end()
    await writing
    assert.ok((await early.done).equals(bytes))
    assert.ok((await late.done).equals(bytes))
    assert.ok(subject.verified)
    assert.equal(subject.followers, 0)
    const range = await reader(subject.follow({ start: 10, end: 19 })).done
    assert.ok(range.equals(bytes.subarray(10, 20)))
    await subject.remove()
  })

  it('fails every follower and removes the file when the body does not hash to the digest, is cut short or runs long', async () => {
    const wrong = Buffer.from(bytes)
    wrong[100] = wrong[100]! ^ 1
    for (const [name, body, size] of [['wrong bytes', wrong, bytes.length], ['cut short', bytes.subarray(0, 1000), bytes.length], ['too long', bytes, bytes.length - 1]] as const) {
      const subject = blob({ size })
      const follower = reader(subject.follow())
      await assert.rejects(subject.write([body]), UpstreamBodyError, name)
      await assert.rejects(follower.done, UpstreamBodyError, name)
      assert.ok(follower.received() < size, `${name}: a follower got the whole blob`)
      assert.equal(existsSync(join(dir, `blob-${count}`)), false, `${name}: the file was left`)
    }
  })

  it('ends a follower when upstream sends nothing for the stall timeout, on the clock', async () => {
    const clock = new ManualClock()
    const subject = blob({ stallMs: 5_000 }, clock)
    const body = new PassThrough()
    const writing = subject.write(body)
    writing.catch(() => {})
    const follower = reader(subject.follow())
    body.write(bytes.subarray(0, 1000))
    await eventually('the first bytes followed', () => follower.received() === 1000, 5_000, 5)
    let ended = false
    follower.done.catch(() => { ended = true })
    clock.advance(4_999)
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(ended, false, 'ended before the stall timeout')
    clock.advance(1)
    await eventually('the follower ended at the stall timeout', () => ended, 2_000, 5)
    await assert.rejects(follower.done, /no byte .* for 5000 ms/)
    body.destroy()
    await subject.remove()
  })
})
