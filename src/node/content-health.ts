import type { Logger } from 'pino'
import type { TransferLedger } from '../observe/ledger.js'
import type { ContentHealthStats } from '../status/stats.js'
import { describeError } from '../util/errors.js'
import { abortable } from '../util/abort.js'
import type { Service } from '../util/service.js'
import { systemClock, type Clock } from '../util/clock.js'

export const DEFAULT_HEALTH_INTERVAL_MS = 5_000
/** While the store is down it is asked this often, so it is back in service soon after it recovers. */
const DOWN_INTERVAL_MS = 1_000
export const DEFAULT_HEALTH_TIMEOUT_MS = 2_000
/** Failed checks in a row before the store counts as down: one slow answer under load is not an outage. */
export const FAILURES_TO_DOWN = 2

export interface ContentPing {
  /** Resolves when the content store answers and its blob files can be read; throws (or is aborted) otherwise. */
  ping(options?: { signal?: AbortSignal }): Promise<void>
}

/**
 * Asks the content store (containerd) every few seconds whether it answers and its blob files
 * can be read, with a short deadline; FAILURES_TO_DOWN failed checks in a row (the mirror adds
 * one whenever a lookup fails) make it unavailable. Readiness and the mirror read `available`:
 * while the store cannot be used, requests are not made to wait for it.
 */
export class ContentHealth implements Service {
  private state: { available: boolean; checkedAt: Date | undefined; error: string | undefined } = { available: true, checkedAt: undefined, error: undefined }
  private failuresInRow = 0
  private cancelNext = (): void => {}
  private running: AbortController | undefined

  private readonly clock: Clock

  constructor(private readonly components: { source: ContentPing; ledger: TransferLedger; logger: Logger; clock?: Clock },
    private readonly init: { intervalMs?: number; timeoutMs?: number } = {}) {
    this.clock = components.clock ?? systemClock
  }

  get available(): boolean {
    return this.state.available
  }

  stats(): ContentHealthStats {
    return { available: this.state.available, lastCheck: this.state.checkedAt?.toISOString() ?? null, error: this.state.error ?? null }
  }

  async start(): Promise<void> {
    if (this.running) return
    this.running = new AbortController()
    await this.check()
    this.schedule()
  }

  stop(): void {
    this.cancelNext()
    this.running?.abort()
    this.running = undefined
  }

  /** One check now; also called by the mirror when a content call failed. */
  async check(): Promise<boolean> {
    const timeoutMs = this.init.timeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS
    const deadline = new AbortController()
    const cancelTimeout = this.clock.schedule(timeoutMs, () => deadline.abort(new Error(`no answer within ${timeoutMs} ms`)))
    const signal = AbortSignal.any([deadline.signal, ...(this.running ? [this.running.signal] : [])])
    try {
      await abortable(this.components.source.ping({ signal }), signal)
      this.update(true, undefined)
    } catch (err) {
      if (this.running?.signal.aborted) return this.state.available
      this.update(false, describeError(err))
    } finally {
      cancelTimeout()
    }
    return this.state.available
  }

  private schedule(): void {
    const interval = this.state.available ? this.init.intervalMs ?? DEFAULT_HEALTH_INTERVAL_MS : DOWN_INTERVAL_MS
    this.cancelNext = this.clock.schedule(interval, () => void this.check().finally(() => { if (this.running) this.schedule() }))
  }

  private update(answered: boolean, error: string | undefined): void {
    this.failuresInRow = answered ? 0 : this.failuresInRow + 1
    const available = answered || (this.state.available && this.failuresInRow < FAILURES_TO_DOWN)
    const changed = available !== this.state.available
    this.state = { available, checkedAt: new Date(), error }
    if (!changed) return
    if (available) {
      this.components.logger.info('the content store can be used again')
    } else {
      this.components.logger.error({ error }, 'the content store cannot be used (containerd does not answer, or its files cannot be read): not ready; blob requests answer 404/503 until it can')
      this.components.ledger.record({ type: 'fault', kind: 'content-unavailable', detail: error ?? 'no answer' })
    }
  }
}
