import type { Logger } from 'pino'
import { peerKey, type PeerAddress } from '../routing/router.js'
import { describeError } from '../util/errors.js'
import type { HolderHealth } from './holder-health.js'
import type { HolderSearch } from './holders.js'

/** Holders asked at once for an answer they must agree on. */
export const AGREEMENT_QUORUM = 3
/** After the first answer, how many answer timeouts the others get to agree or not. */
const LATE_ANSWER_FACTOR = 2

export interface AgreementInit {
  what: string
  /** Most holders asked in all while none answers. */
  maxHolders: number
  stallMs: number
}

export type Agreement<T> = { value: T } | { disagreement: string[] } | undefined

/**
 * Asks up to AGREEMENT_QUORUM holders at once (the ones found within an answer timeout of the
 * first), and gives the answer only if every holder that answered within two answer timeouts of
 * the first answer agrees. Holders that fail or lack it do not count; when none of a batch has
 * it, the next batch is asked. Silent holders are skipped by later requests.
 */
export async function agreedAnswer<T>(components: { holders: HolderSearch; health: HolderHealth; logger: Logger }, init: AgreementInit,
  ask: (peer: PeerAddress, signal: AbortSignal) => Promise<T | undefined>, identify: (value: T) => string, options: { signal: AbortSignal }): Promise<Agreement<T>> {
  const { holders, health } = components
  for (let next = 0; next < init.maxHolders;) {
    const batch: PeerAddress[] = []
    for (; batch.length < AGREEMENT_QUORUM && next < init.maxHolders; next++) {
      const peer = await holders.nth(next, batch.length === 0 ? init.stallMs : health.answerTimeoutMs())
      if (!peer) break
      if (!health.isBanned(peer)) batch.push(peer)
    }
    if (batch.length === 0) return undefined
    const answers = await askBatch(components, init, batch, ask, options)
    if (answers.length === 0) continue
    const first = answers[0]!
    if (answers.every((answer) => identify(answer.value) === identify(first.value))) return { value: first.value }
    return { disagreement: answers.map((answer) => `${peerKey(answer.peer)}: ${identify(answer.value)}`) }
  }
  return undefined
}

async function askBatch<T>(components: { health: HolderHealth; logger: Logger }, init: AgreementInit, batch: PeerAddress[],
  ask: (peer: PeerAddress, signal: AbortSignal) => Promise<T | undefined>, options: { signal: AbortSignal }): Promise<{ value: T; peer: PeerAddress }[]> {
  const { health, logger } = components
  const answers: { value: T; peer: PeerAddress }[] = []
  const cutOff = new AbortController()
  const signal = AbortSignal.any([options.signal, cutOff.signal, AbortSignal.timeout(init.stallMs)])
  let firstAnswer: (() => void) | undefined
  const answered = new Promise<void>((resolve) => { firstAnswer = resolve })
  const silent = new Set(batch)
  const asks = batch.map(async (peer) => {
    const started = performance.now()
    try {
      const value = await ask(peer, signal)
      silent.delete(peer)
      health.answered(peer, performance.now() - started)
      if (value === undefined) return
      answers.push({ value, peer })
      firstAnswer?.()
    } catch (err) {
      if (signal.aborted) return
      silent.delete(peer)
      logger.debug({ peer: peerKey(peer), what: init.what, err }, 'holder request failed')
      health.failed(peer, init.what, describeError(err))
    }
  })
  const all = Promise.all(asks)
  await Promise.race([all, answered.then(() => Promise.race([all, delay(LATE_ANSWER_FACTOR * health.answerTimeoutMs())]))])
  cutOff.abort()
  await all
  options.signal.throwIfAborted()
  if (answers.length > 0) for (const peer of silent) health.failed(peer, init.what, 'no answer while other holders answered')
  return answers
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}
