import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Deadline } from '../../src/util/deadline.js'
import { ManualClock } from '../support/clock.js'

const late = (): Error => new Error('late')

describe('a request deadline on the clock', () => {
  it('aborts its signal with the late error exactly when the time is up, not after release', () => {
    const clock = new ManualClock()
    const deadline = new Deadline(clock, 1_000, late)
    clock.advance(999)
    assert.equal(deadline.signal.aborted, false)
    clock.advance(1)
    assert.equal((deadline.signal.reason as Error).message, 'late')
    const released = new Deadline(clock, 1_000, late)
    released.release()
    clock.advance(5_000)
    assert.equal(released.signal.aborted, false, 'a released deadline expired')
  })

  it('follows the request: aborted with the request\'s reason, even after release', () => {
    const clock = new ManualClock()
    const request = new AbortController()
    const deadline = new Deadline(clock, 1_000, late, request.signal)
    deadline.release()
    request.abort(new Error('client gone'))
    assert.equal((deadline.signal.reason as Error).message, 'client gone')
  })

  it('gives a step at most its own bound and an equal share of what remains with the steps after it', () => {
    const clock = new ManualClock()
    const deadline = new Deadline(clock, 10_000, late)
    assert.equal(deadline.share(3_000), 3_000)
    assert.equal(deadline.share(8_000, 2), 5_000)
    clock.advance(9_000)
    assert.equal(deadline.share(3_000, 2), 500)
    clock.advance(2_000)
    assert.equal(deadline.share(3_000), 0)
  })

  it('bounds a step by its own time or the deadline, whichever comes first; a released step never fires', () => {
    const clock = new ManualClock()
    const deadline = new Deadline(clock, 1_000, late)
    const short = deadline.within(300, () => new Error('step'))
    const long = deadline.within(5_000, () => new Error('step'))
    const released = deadline.within(300, () => new Error('step'))
    released.release()
    clock.advance(300)
    assert.equal((short.signal.reason as Error).message, 'step')
    assert.equal(long.signal.aborted, false)
    assert.equal(released.signal.aborted, false)
    clock.advance(700)
    assert.equal((long.signal.reason as Error).message, 'late')
    assert.equal(released.signal.aborted, false, 'a released step followed the deadline')
  })
})
