import assert from 'node:assert/strict'
import { eventually } from '../support/eventually.js'
import { ManualClock } from '../support/clock.js'
import { describe, it } from 'node:test'
import { ContentHealth, FAILURES_TO_DOWN } from '../../src/node/content-health.js'
import { UnavailableError } from '../../src/oci/errors.js'
import { LabelValues, OTHER_LABEL } from '../../src/observe/label-values.js'
import { TransferLedger } from '../../src/observe/ledger.js'
import { StreamSlots } from '../../src/registry/stream-slots.js'
import { silentLogger } from '../support/registry-app.js'

describe('bounded label values', () => {
  it('keeps the configured values and counts everything else as other', () => {
    const labels = new LabelValues(['docker.io', 'ghcr.io'])
    assert.equal(labels.of('docker.io'), 'docker.io')
    assert.equal(labels.of('evil.example'), OTHER_LABEL)
    assert.equal(labels.of(undefined), OTHER_LABEL)
  })

  it('without configured values, learns the first few and no more', () => {
    const labels = new LabelValues([], 2)
    assert.equal(labels.of('a'), 'a')
    assert.equal(labels.of('b'), 'b')
    assert.equal(labels.of('c'), OTHER_LABEL)
    assert.equal(labels.of('a'), 'a')
  })
})

describe('blob stream slots', () => {
  it('caps streams per client and overall, and a slot given back twice counts once', () => {
    const slots = new StreamSlots(3, 2)
    const first = slots.take('10.0.0.1')
    slots.take('10.0.0.1')
    assert.throws(() => slots.take('10.0.0.1'), UnavailableError)
    const third = slots.take('10.0.0.2')
    assert.throws(() => slots.take('10.0.0.3'), UnavailableError)
    first()
    first()
    assert.equal(slots.active, 2)
    slots.take('10.0.0.3')
    third()
    assert.equal(slots.active, 2)
  })

  it('a request over a cap waits for a slot, first come first served, and gets one when a stream ends', async () => {
    const clock = new ManualClock()
    const slots = new StreamSlots(2, 1, clock)
    const first = await slots.acquire('10.0.0.1')
    const order: string[] = []
    const second = slots.acquire('10.0.0.1').then((release) => { order.push('second'); return release })
    const third = slots.acquire('10.0.0.1').then((release) => { order.push('third'); return release })
    await Promise.resolve()
    assert.deepEqual(order, [])
    first()
    ;(await second)()
    ;(await third)()
    assert.deepEqual(order, ['second', 'third'])
    assert.equal(slots.active, 0)
  })

  it('a waiting request gets 503 after the wait, or its own reason when it is cancelled, and leaves the queue', async () => {
    const clock = new ManualClock()
    const slots = new StreamSlots(1, 1, clock)
    const held = await slots.acquire('10.0.0.1')
    const late = slots.acquire('10.0.0.2', { waitMs: 1_000 })
    clock.advance(999)
    const cancel = new AbortController()
    const cancelled = slots.acquire('10.0.0.3', { signal: cancel.signal })
    cancel.abort(new Error('client went away'))
    await assert.rejects(cancelled, /client went away/)
    clock.advance(1)
    await assert.rejects(late, (err: Error) => err instanceof UnavailableError && /blob streams are in progress/.test(err.message))
    held()
    assert.equal(slots.active, 0, 'nobody waits any more, so nobody took the freed slot')
    ;(await slots.acquire('10.0.0.4'))()
  })

  it('refuses at once when too many already wait', async () => {
    const slots = new StreamSlots(1, 1, new ManualClock())
    await slots.acquire('a')
    const waiting = Array.from({ length: 4 }, () => slots.acquire('b'))
    await assert.rejects(slots.acquire('c'), UnavailableError)
    for (const wait of waiting) wait.catch(() => {})
  })
})

describe('content store health', () => {
  it('turns unavailable only after failures in a row, and available at the first answer', async () => {
    let answering = true
    const ledger = new TransferLedger()
    const health = new ContentHealth({ source: { ping: async () => { if (!answering) throw new Error('connect ENOENT /run/containerd/containerd.sock') } }, ledger, logger: silentLogger },
      { intervalMs: 60_000 })
    await health.start()
    try {
      assert.equal(health.available, true)
      answering = false
      for (let failure = 1; failure < FAILURES_TO_DOWN; failure++) assert.equal(await health.check(), true, 'one failed check is not an outage')
      assert.equal(await health.check(), false)
      assert.match(health.stats().error ?? '', /ENOENT/)
      assert.equal(ledger.faults['content-unavailable'], 1)
      answering = true
      assert.equal(await health.check(), true)
    } finally {
      health.stop()
      health.stop()
    }
  })

  it('counts a check that does not answer within its timeout (on the clock) as failed', async () => {
    const clock = new ManualClock()
    const health = new ContentHealth({ source: { ping: (options) => new Promise((_, reject) => options?.signal?.addEventListener('abort', () => reject(options.signal!.reason))) },
      ledger: new TransferLedger(), logger: silentLogger, clock }, { intervalMs: 60_000, timeoutMs: 60_000 })
    for (let failure = 0; failure < FAILURES_TO_DOWN; failure++) {
      let settled = false
      const check = health.check().finally(() => { settled = true })
      clock.advance(59_999)
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(settled, false, 'the check ended before its timeout')
      clock.advance(1)
      await eventually('the check given up at its timeout', () => settled, 5_000, 5)
      await check
    }
    assert.equal(health.available, false)
  })
})
