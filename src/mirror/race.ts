import { setMaxListeners } from 'node:events'
import type { Logger } from 'pino'
import { peerKey, type PeerAddress } from '../routing/router.js'
import { describeError } from '../util/errors.js'
import { Wakeup } from '../util/wakeup.js'
import type { HolderHealth } from './holder-health.js'
import type { HolderSearch } from './holders.js'

export interface RaceComponents {
  holders: HolderSearch
  health: HolderHealth
  logger: Logger
}

export interface RaceInit {
  what: string
  /** Most holders asked in all. */
  maxHolders: number
  /** Most holders asked at once. */
  maxInFlight: number
  /** Longest wait for any one holder's answer. */
  stallMs: number
}

/**
 * Asks holders in quick succession: the first at once, the next when no answer came within the
 * measured answer timeout (or at once when one fails or says it lacks the content), the earlier
 * ones still running. The first answer that is not `undefined` wins and the others are
 * cancelled. Undefined when every holder asked failed or lacks it, or none could be found.
 */
export function raceHolders<T>(components: RaceComponents, init: RaceInit, ask: (peer: PeerAddress, signal: AbortSignal) => Promise<T | undefined>,
  options: { signal: AbortSignal }): Promise<{ value: T; peer: PeerAddress } | undefined> {
  const { holders, health, logger } = components
  const done = new AbortController()
  const raceSignal = AbortSignal.any([options.signal, done.signal])
  // One listener per holder asked lands here.
  setMaxListeners(init.maxHolders + 8, raceSignal)
  const changed = new Wakeup()
  const pending = new Map<PeerAddress, number>()
  let winner: { value: T; peer: PeerAddress } | undefined
  const launch = (peer: PeerAddress): void => {
    const started = performance.now()
    pending.set(peer, started)
    const attempt = AbortSignal.any([raceSignal, AbortSignal.timeout(init.stallMs)])
    ask(peer, attempt).then((value) => {
      health.answered(peer, performance.now() - started)
      if (value === undefined) return
      health.delivered(init.what, peer)
      winner ??= { value, peer }
    }, (err: unknown) => {
      if (done.signal.aborted || options.signal.aborted) return
      logger.debug({ peer: peerKey(peer), what: init.what, err }, 'holder request failed')
      health.failed(peer, init.what, describeError(err))
    }).finally(() => {
      pending.delete(peer)
      changed.notify()
    })
  }
  const run = async (): Promise<{ value: T; peer: PeerAddress } | undefined> => {
    let asked = 0
    while (!winner && !options.signal.aborted) {
      const next = asked < init.maxHolders && pending.size < init.maxInFlight ? holders.found[asked] : undefined
      if (next && health.isBanned(next)) {
        asked++
        continue
      }
      if (next) {
        launch(next)
        asked++
        await changed.wait({ timeoutMs: health.answerTimeoutMs(), signal: options.signal })
        continue
      }
      if (pending.size > 0) {
        // Woken by an answer, or by the lookup finding another holder to ask.
        const lookingForMore = !holders.done && holders.found.length <= asked
        await Promise.race([changed.wait({ signal: options.signal }), ...(lookingForMore ? [holders.nth(asked, init.stallMs)] : [])])
        continue
      }
      if (asked >= init.maxHolders || holders.done) return undefined
      if (!(await holders.nth(asked, init.stallMs))) return undefined
    }
    options.signal.throwIfAborted()
    return winner
  }
  return run().finally(() => {
    // Holders still silent after the answer timeout when the race ended are skipped for a while too.
    const overdue = performance.now() - health.answerTimeoutMs()
    for (const [peer, started] of pending) if (started < overdue) health.failed(peer, init.what, `no answer within ${health.answerTimeoutMs()} ms while another holder answered`)
    done.abort()
  })
}
