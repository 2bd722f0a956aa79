import { setMaxListeners } from 'node:events'
import type { PeerAddress } from '../routing/router.js'
import { Wakeup } from '../util/wakeup.js'
import type { AskHolder, HolderPool } from './holder-pool.js'

export interface RaceInit {
  /** What is asked, for the pool's silence rule. */
  question: string
  /** Most holders asked in all. */
  maxHolders: number
  /** Most holders asked at once. */
  maxInFlight: number
  /** Longest wait for the lookup to name another holder. */
  stallMs: number
}

/**
 * Asks holders in quick succession: the first at once, the next when no answer came within the
 * measured answer timeout (or at once when one fails or says it lacks the content), the earlier
 * ones still running. The first answer that is not `undefined` wins and the others are
 * cancelled. Undefined when every holder asked failed or lacks it, or none could be found.
 */
export function raceHolders<T>(pool: HolderPool, init: RaceInit, ask: AskHolder<T>,
  options: { signal: AbortSignal }): Promise<{ value: T; peer: PeerAddress } | undefined> {
  const done = new AbortController()
  const raceSignal = AbortSignal.any([options.signal, done.signal])
  // One listener per holder asked lands here.
  setMaxListeners(init.maxHolders + 8, raceSignal)
  const changed = new Wakeup()
  let pending = 0
  let winner: { value: T; peer: PeerAddress } | undefined
  const launch = (peer: PeerAddress): void => {
    pending++
    pool.ask(peer, ask, { signal: raceSignal, question: init.question }).then((value) => {
      if (value !== undefined) winner ??= { value, peer }
    }, () => {}).finally(() => {
      pending--
      changed.notify()
    })
  }
  const asked = new Set<PeerAddress>()
  const run = async (): Promise<{ value: T; peer: PeerAddress } | undefined> => {
    while (!winner && !options.signal.aborted) {
      const next = asked.size < init.maxHolders && pending < init.maxInFlight ? pool.nextToAsk(asked) : undefined
      if (next) {
        launch(next)
        asked.add(next)
        await changed.wait({ timeoutMs: pool.answerTimeoutMs(), signal: options.signal })
        continue
      }
      if (pending > 0) {
        // Woken by an answer, or by the lookup finding another holder to ask.
        const lookingForMore = !pool.done && pool.nextToAsk(asked) === undefined
        await Promise.race([changed.wait({ signal: options.signal }), ...(lookingForMore ? [pool.nth(pool.found.length, init.stallMs)] : [])])
        continue
      }
      if (asked.size >= init.maxHolders || pool.done) return undefined
      if (!(await pool.nth(pool.found.length, init.stallMs))) return undefined
    }
    options.signal.throwIfAborted()
    return winner
  }
  return run().finally(() => done.abort())
}
