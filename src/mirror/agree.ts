import { peerKey, type PeerAddress } from '../routing/router.js'
import type { AskHolder, HolderPool } from './holder-pool.js'

/** Holders asked at once for an answer they must agree on. */
export const AGREEMENT_QUORUM = 3

export interface AgreementInit {
  /** What is asked, for the pool's silence rule. */
  question: string
  /** Most holders asked in all while none answers. */
  maxHolders: number
  stallMs: number
}

export type Agreement<T> = { value: T } | { disagreement: string[] } | undefined

/**
 * Asks up to AGREEMENT_QUORUM holders at once (the ones found within an answer timeout of the
 * first), and gives the answer only if every holder that answered agrees; the pool cuts the
 * ones still silent a short while after the first answer. Holders that fail or lack it do not
 * count; when none of a batch has it, the next batch is asked.
 */
export async function agreedAnswer<T>(pool: HolderPool, init: AgreementInit, ask: AskHolder<T>, identify: (value: T) => string,
  options: { signal: AbortSignal }): Promise<Agreement<T>> {
  for (let next = 0; next < init.maxHolders;) {
    const batch: PeerAddress[] = []
    for (; batch.length < AGREEMENT_QUORUM && next < init.maxHolders; next++) {
      const peer = await pool.nth(next, batch.length === 0 ? init.stallMs : pool.answerTimeoutMs())
      if (!peer) break
      if (!pool.isBanned(peer)) batch.push(peer)
    }
    if (batch.length === 0) return undefined
    const answers: { peer: PeerAddress; value: T }[] = []
    await Promise.all(batch.map(async (peer) => {
      const value = await pool.ask(peer, ask, { ...options, question: init.question })
      if (value !== undefined) answers.push({ peer, value })
    }))
    if (answers.length === 0) continue
    const first = answers[0]!
    if (answers.every((answer) => identify(answer.value) === identify(first.value))) return { value: first.value }
    return { disagreement: answers.map((answer) => `${peerKey(answer.peer)}: ${identify(answer.value)}`) }
  }
  return undefined
}
