import type { SignalOptions } from '../util/abort.js'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { ContentEvent, ContentWatcher } from '../content/provider.js'
import { decodeImageEventName, type ContainerdClient } from './client.js'

const TOPICS: Record<string, ContentEvent['type']> = {
  '/images/create': 'image-create',
  '/images/update': 'image-update',
  '/images/delete': 'image-delete',
}

export const DEFAULT_MIN_BACKOFF_MS = 250
export const DEFAULT_MAX_BACKOFF_MS = 10_000

export interface ContainerdWatcherInit {
  minBackoffMs?: number
  maxBackoffMs?: number
}

/**
 * containerd image events for one namespace. Resubscribes with backoff when containerd
 * restarts and says `resync` each time, since events may have been missed meanwhile.
 */
export class ContainerdEventWatcher implements ContentWatcher {
  private readonly minBackoffMs: number
  private readonly maxBackoffMs: number

  constructor(private readonly components: { client: ContainerdClient; logger: Logger }, init: ContainerdWatcherInit = {}) {
    this.minBackoffMs = init.minBackoffMs ?? DEFAULT_MIN_BACKOFF_MS
    this.maxBackoffMs = init.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS
  }

  async *watch(options: SignalOptions = {}): AsyncIterable<ContentEvent> {
    const signal = options.signal ?? new AbortController().signal
    const { client, logger } = this.components
    let backoff = this.minBackoffMs
    while (!signal.aborted) {
      const filter = `namespace==${client.namespace},topic~="^/images/"`
      try {
        const stream = client.subscribe([filter], { signal })
        yield { type: 'resync' }
        for await (const envelope of stream) {
          backoff = this.minBackoffMs
          const event = toContentEvent(envelope.namespace === client.namespace ? envelope : undefined, logger)
          if (event) yield event
        }
        logger.warn('containerd event stream ended; resubscribing')
      } catch (err) {
        if (signal.aborted) return
        logger.warn({ err, retryInMs: backoff }, 'containerd event stream failed; resubscribing')
      }
      try {
        await sleep(backoff, undefined, { signal })
      } catch {
        return
      }
      backoff = Math.min(backoff * 2, this.maxBackoffMs)
    }
  }
}

function toContentEvent(envelope: { topic: string; event: { value: Buffer } | null } | undefined, logger: Logger): ContentEvent | undefined {
  if (!envelope) return undefined
  const type = TOPICS[envelope.topic]
  if (!type || !envelope.event) return undefined
  try {
    const name = decodeImageEventName(envelope.event.value)
    return name ? { type, name } : undefined
  } catch (err) {
    logger.warn({ topic: envelope.topic, err }, 'ignoring undecodable containerd event')
    return undefined
  }
}
