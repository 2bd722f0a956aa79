import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { median, percentile } from '../../bench/numbers.js'

describe('bench statistics', () => {
  it('a percentile is the nearest rank: of 100 samples, p99 is the second slowest, not the slowest', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i)
    assert.equal(percentile(values, 99), 99)
    assert.equal(percentile(values, 90), 90)
    assert.equal(percentile(values, 50), 50)
    assert.equal(percentile(values, 100), 100)
  })

  it('a percentile of few samples stays within them, and of none is null', () => {
    assert.equal(percentile([7], 99), 7)
    assert.equal(percentile([3, 1, 2], 0), 1)
    assert.equal(percentile([3, 1, 2], 99), 3)
    assert.equal(percentile([], 50), null)
  })

  it('the median of an even count is the mean of the middle two', () => {
    assert.equal(median([4, 1, 3, 2]), 2.5)
    assert.equal(median([5, 1, 3]), 3)
  })
})
