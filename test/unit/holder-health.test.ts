import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { FIRST_SKIP_MS, HolderHealth, INITIAL_ANSWER_MS, MAX_ANSWER_MS, MAX_SKIP_MS, MIN_ANSWER_MS, RECENT_HOLDER_MS } from '../../src/mirror/holder-health.js'
import { HolderPools, type HolderPool } from '../../src/mirror/holder-pool.js'
import { raceHolders } from '../../src/mirror/race.js'
import { agreedAnswer } from '../../src/mirror/agree.js'
import { TransferLedger } from '../../src/observe/ledger.js'
import { MemoryRoutingNetwork } from '../../src/routing/memory.js'
import type { PeerAddress } from '../../src/routing/router.js'
import { ManualClock } from '../support/clock.js'
import { silentLogger } from '../support/registry-app.js'

const peer = (port: number): PeerAddress => ({ host: '10.0.0.1', port })

describe('holder health', () => {
  it('starts with a few hundred ms to answer and follows measured answers within bounds', () => {
    const health = new HolderHealth({ clock: new ManualClock() })
    assert.equal(health.answerTimeoutMs(), INITIAL_ANSWER_MS)
    for (let i = 0; i < 50; i++) health.answered(peer(1), 1)
    assert.equal(health.answerTimeoutMs(), MIN_ANSWER_MS)
    for (let i = 0; i < 50; i++) health.answered(peer(1), 60_000)
    assert.equal(health.answerTimeoutMs(), MAX_ANSWER_MS)
  })

  it('skips a failed holder for a while, longer each time, reports the first failure and drops its record', () => {
    const clock = new ManualClock()
    const ledger = new TransferLedger(clock)
    const forgotten: string[] = []
    const health = new HolderHealth({ clock, ledger, router: { forget: (key, holder) => forgotten.push(`${key}@${holder.port}`) } })
    health.failed(peer(1), 'sha256:a', 'refused')
    assert.ok(health.isSkipped(peer(1)))
    clock.advance(FIRST_SKIP_MS)
    assert.equal(health.isSkipped(peer(1)), false)
    health.failed(peer(1), 'sha256:a', 'refused')
    clock.advance(FIRST_SKIP_MS)
    assert.ok(health.isSkipped(peer(1)), 'the second skip lasts twice as long')
    for (let i = 0; i < 20; i++) health.failed(peer(1), 'sha256:b', 'timeout')
    clock.advance(MAX_SKIP_MS)
    assert.equal(health.isSkipped(peer(1)), false, 'never longer than MAX_SKIP_MS')
    assert.equal(ledger.faults['peer-unanswered'], 2, 'failures while already skipped are not reported again')
    assert.ok(forgotten.includes('sha256:a@1') && forgotten.includes('sha256:b@1'))
    health.answered(peer(1), 5)
    assert.equal(health.isSkipped(peer(1)), false)
  })

  it('remembers who delivered a key, most recent first, for a while', () => {
    const clock = new ManualClock()
    const health = new HolderHealth({ clock })
    health.delivered('k', peer(1))
    health.delivered('k', peer(2))
    assert.deepEqual(health.recentHolders('k').map((holder) => holder.port), [2, 1])
    health.failed(peer(2), 'k', 'refused')
    assert.deepEqual(health.recentHolders('k').map((holder) => holder.port), [1])
    clock.advance(RECENT_HOLDER_MS)
    assert.deepEqual(health.recentHolders('k'), [])
  })
})

describe('racing holders', () => {
  function holdersOf(ports: number[], health: HolderHealth): HolderPool {
    const network = new MemoryRoutingNetwork()
    for (const port of ports) network.router(peer(port)).advertise(['key'])
    return new HolderPools({ router: network.router({ host: '10.0.0.9', port: 9 }), health, logger: silentLogger }, { stallMs: 10_000 }).pool('key')
  }

  /** Holder 2 answers at once; the others stay silent until cut. */
  const onlyTwoAnswers = (asked: number[]) => async (holder: PeerAddress, signal: AbortSignal): Promise<string | undefined> => {
    asked.push(holder.port)
    if (holder.port === 2) return 'from 2'
    await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))
    return undefined
  }

  it('asks the next holder when the first is silent, and the first answer wins', async () => {
    const health = new HolderHealth()
    const holders = holdersOf([1, 2], health)
    const asked: number[] = []
    const started = performance.now()
    const answer = await raceHolders(holders, { question: 'size', maxHolders: 8, maxInFlight: 4, stallMs: 10_000 },
      onlyTwoAnswers(asked), { signal: AbortSignal.timeout(5_000) })
    assert.deepEqual(answer, { value: 'from 2', peer: peer(2) })
    assert.deepEqual(asked, [1, 2])
    // One answer timeout (300 ms) is waited for, not the stall timeout (10 s).
    assert.ok(performance.now() - started < 10_000 / 4, `answered after ${Math.round(performance.now() - started)} ms`)
    assert.ok(health.isSkipped(peer(1)), 'the silent holder is skipped by later requests')
  })

  it('goes through holders that fail or lack the content at once, and says undefined when none has it', async () => {
    const health = new HolderHealth()
    // Answers measured slow: waiting for even one answer timeout would take MAX_ANSWER_MS.
    for (let i = 0; i < 50; i++) health.answered(peer(9), 60_000)
    assert.equal(health.answerTimeoutMs(), MAX_ANSWER_MS)
    const holders = holdersOf([1, 2, 3], health)
    const started = performance.now()
    const answer = await raceHolders(holders, { question: 'size', maxHolders: 8, maxInFlight: 4, stallMs: 10_000 },
      async (holder) => {
        if (holder.port === 1) throw new Error('connection refused')
        return undefined
      }, { signal: AbortSignal.timeout(30_000) })
    assert.equal(answer, undefined)
    assert.ok(performance.now() - started < MAX_ANSWER_MS, `no answer timeout is waited on (${Math.round(performance.now() - started)} ms)`)
    assert.ok(health.isSkipped(peer(1)) && !health.isSkipped(peer(2)))
  })

  it('asks a holder that delivered the key before the DHT names anyone, and holders being skipped last', async () => {
    const health = new HolderHealth()
    health.failed(peer(1), 'other', 'refused')
    health.delivered('key', peer(3))
    const holders = holdersOf([1, 2, 3], health)
    assert.equal((await holders.nth(0, 1000))?.port, 3)
    assert.equal((await holders.nth(1, 1000))?.port, 2)
    assert.equal((await holders.nth(2, 1000))?.port, 1)
  })

  it('a pool found before a holder failed asks the holders not skipped first (the next request reuses the pool)', async () => {
    const health = new HolderHealth()
    const holders = holdersOf([1, 2], health)
    await holders.nth(1, 1_000)
    const race = (asked: number[]): Promise<unknown> => raceHolders(holders, { question: 'size', maxHolders: 8, maxInFlight: 4, stallMs: 10_000 },
      onlyTwoAnswers(asked), { signal: AbortSignal.timeout(5_000) })
    const first: number[] = []
    await race(first)
    assert.deepEqual(first, [1, 2])
    assert.ok(health.isSkipped(peer(1)))
    const second: number[] = []
    await race(second)
    assert.deepEqual(second, [2], 'the holder skipped since the pool was found is not asked first')
  })

  it('holders asked together for an agreement: one answering a little later than another is heard, not cut as silent', async () => {
    const health = new HolderHealth()
    const holders = holdersOf([1, 2], health)
    await holders.nth(1, 1_000)
    const answered: number[] = []
    const agreement = await agreedAnswer(holders, { question: 'manifest', maxHolders: 8, stallMs: 10_000 }, async (holder, signal) => {
      // The first asked answers 50 ms after the second: well within an answer timeout (300 ms).
      if (holder.port === 1) await sleep(50, undefined, { signal })
      answered.push(holder.port)
      return 'sha256:same'
    }, (value) => value, { signal: AbortSignal.timeout(5_000) })
    assert.deepEqual(agreement, { value: 'sha256:same' })
    assert.deepEqual(answered.sort(), [1, 2])
    assert.equal(health.isSkipped(peer(1)), false, 'the slower holder is not skipped')
  })
})
