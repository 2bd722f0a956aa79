import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { digestHex, type Digest } from '../oci/digest.js'
import type { ByteRange } from '../oci/range.js'
import { systemClock, type Clock } from '../util/clock.js'
import { ShoalError } from '../util/errors.js'
import { BodyMismatchError, GrowingBlob, UpstreamBodyError } from './growing-blob.js'
import type { FirstPullRequest, PullSource, SourceBody } from './pull-source.js'
import { UpstreamRefusedError } from './tokens.js'
import { UpstreamUnavailableError } from './upstream-source.js'

/** Blobs being pulled or kept after a first pull on one node, whoever asked. */
export const MAX_FIRST_PULLS = 64
export const DEFAULT_FIRST_PULL_LINGER_MS = 5 * 60_000

export interface FirstPullsComponents {
  logger: Logger
  clock?: Clock
  /** Where to read a request from, in the order to try: the nodes nearer the fetcher, then upstream. */
  sources(request: FirstPullRequest): PullSource[]
  /** A peer source sent bytes that, with the rest, did not hash to the digest. */
  convict?(source: PullSource, digest: Digest, why: string): void
  /** The blob is whole and verified (it can be served and swarmed), and later removed. */
  verified?(digest: Digest): void
  removed?(digest: Digest): void
  /** Bytes read for a first pull, by the kind of source. */
  received?(request: FirstPullRequest, source: PullSource, bytes: number): void
  /** How a pull this node started ended; `source` is where it began (none when no source answered). */
  finished?(request: FirstPullRequest, outcome: FirstPullOutcome, source: PullSource | undefined): void
}

export type FirstPullOutcome = 'verified' | 'failed' | 'refused' | 'unavailable'

export interface FirstPullsInit {
  dataDir: string
  /** A source that answers or sends nothing for this long is left for the next. */
  stallMs: number
  /** How long a verified blob is kept once nobody reads it (`--download-linger`). */
  lingerMs?: number
  maxPulls?: number
}

/** One blob being pulled (or kept) on this node: its file, where its bytes came from, who reads it. */
export class FirstPull {
  readonly startedAt: number
  /** Bytes from each source, by its name. */
  readonly received = new Map<string, { source: PullSource; bytes: number }>()
  readonly readers = new Map<string, number>()
  current: PullSource

  constructor(readonly request: FirstPullRequest, readonly size: number, readonly blob: GrowingBlob, first: PullSource, clock: Clock) {
    this.startedAt = clock.now()
    this.current = first
  }

  /** The bytes of `range` as they arrive and are released; `reader` names who reads (a peer, containerd). */
  follow(range: ByteRange | undefined, reader: string): Readable {
    const stream = this.blob.follow(range)
    this.readers.set(reader, (this.readers.get(reader) ?? 0) + 1)
    stream.once('close', () => {
      const left = (this.readers.get(reader) ?? 1) - 1
      if (left > 0) this.readers.set(reader, left)
      else this.readers.delete(reader)
    })
    return stream
  }

  count(source: PullSource, bytes: number): void {
    const entry = this.received.get(source.name) ?? { source, bytes: 0 }
    entry.bytes += bytes
    this.received.set(source.name, entry)
  }
}

export class SourceStalledError extends ShoalError {}

/**
 * First pulls on this node: one per digest (single flight), each written to a file as it
 * arrives from the first source that answers, continued from the next source at the byte
 * where one fails, and followed by every reader at once. Verified before its last byte is
 * released; kept `lingerMs` after its last reader, so late nodes and the swarm can read it.
 */
export class FirstPulls {
  private readonly pulls = new Map<Digest, Promise<FirstPull>>()
  /** Pulls that have a file: running, or verified and kept. */
  private readonly withFiles = new Map<Digest, FirstPull>()
  private readonly stopped = new AbortController()
  private readonly timers = new Set<() => void>()
  private readonly clock: Clock

  constructor(private readonly components: FirstPullsComponents, private readonly init: FirstPullsInit) {
    this.clock = components.clock ?? systemClock
  }

  /** The pull of `request.digest`, started if none runs; rejects with UpstreamRefusedError or UpstreamUnavailableError when no source gives it. */
  open(request: FirstPullRequest): Promise<FirstPull> {
    let pull = this.pulls.get(request.digest)
    if (!pull) {
      pull = this.begin(request)
      this.pulls.set(request.digest, pull)
      pull.catch((err: unknown) => {
        this.pulls.delete(request.digest)
        this.components.finished?.(request, err instanceof UpstreamRefusedError ? 'refused' : 'unavailable', undefined)
      })
    }
    return pull
  }

  /** A pull whose blob is whole and verified, if this node keeps one. */
  verified(digest: Digest): FirstPull | undefined {
    const pull = this.withFiles.get(digest)
    return pull?.blob.verified ? pull : undefined
  }

  /** Pulls running or kept now. */
  list(): FirstPull[] {
    return [...this.withFiles.values()]
  }

  start(): void {}

  async stop(): Promise<void> {
    if (this.stopped.signal.aborted) return
    this.stopped.abort(new ShoalError('shoal is stopping'))
    for (const cancel of this.timers) cancel()
    this.timers.clear()
    const pulls = [...this.pulls.values()]
    this.pulls.clear()
    this.withFiles.clear()
    for (const pull of pulls) await pull.then((started) => started.blob.remove(), () => {})
  }

  private async begin(request: FirstPullRequest): Promise<FirstPull> {
    if (this.stopped.signal.aborted) throw new UpstreamUnavailableError(undefined, 'shoal is stopping')
    if (this.withFiles.size >= (this.init.maxPulls ?? MAX_FIRST_PULLS)) throw new UpstreamUnavailableError(undefined, `this node already keeps ${this.withFiles.size} first pulls`)
    const sources = this.components.sources(request)
    const attempts = new SourceAttempts(sources, this.init.stallMs, this.clock, this.stopped.signal)
    const first = await attempts.next(0)
    try {
      await mkdir(join(this.init.dataDir, 'first-pulls'), { recursive: true })
    } catch (err) {
      first.answer.body.destroy()
      throw new UpstreamUnavailableError(undefined, `cannot keep a first pull in ${this.init.dataDir}: ${(err as Error).message}`)
    }
    // Followers wait past one source's silence and the next source's answer before they give up.
    const blob = new GrowingBlob({ path: join(this.init.dataDir, 'first-pulls', digestHex(request.digest)), digest: request.digest, size: first.answer.size, stallMs: 3 * this.init.stallMs }, { clock: this.clock })
    const pull = new FirstPull(request, first.answer.size, blob, first.source, this.clock)
    this.withFiles.set(request.digest, pull)
    this.components.logger.info({ registry: request.registry, repository: request.repository, digest: request.digest, size: pull.size, from: first.source.name, server: first.answer.server }, 'first pull')
    void blob.write(this.chain(pull, attempts, first)).then(() => {
      this.components.finished?.(request, 'verified', first.source)
      this.components.verified?.(request.digest)
      this.linger(pull)
    }, (err: unknown) => {
      this.components.finished?.(request, 'failed', first.source)
      this.failed(pull, err as Error)
    })
    return pull
  }

  /** The bytes of the pull from its current source, continued from the next one where a source fails. */
  private async *chain(pull: FirstPull, attempts: SourceAttempts, first: Attempt): AsyncGenerator<Buffer> {
    let current = first
    for (;;) {
      pull.current = current.source
      try {
        yield* this.fromSource(pull, current)
        return
      } catch (err) {
        if (this.stopped.signal.aborted) throw err
        this.components.logger.warn({ digest: pull.request.digest, source: current.source.name, at: pull.blob.written, err }, 'a first-pull source failed; continuing from the next')
        current = await attempts.next(pull.blob.written)
        if (current.answer.size !== pull.size) throw new UpstreamBodyError(`${current.source.name} gives ${pull.request.digest} as ${current.answer.size} bytes, not ${pull.size}`)
      }
    }
  }

  private async *fromSource(pull: FirstPull, current: Attempt): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of stallGuard(current.answer.body, this.init.stallMs, this.clock, current.source.name)) {
        pull.count(current.source, chunk.length)
        this.components.received?.(pull.request, current.source, chunk.length)
        yield chunk
      }
    } finally {
      current.answer.body.destroy()
    }
  }

  private failed(pull: FirstPull, err: Error): void {
    this.pulls.delete(pull.request.digest)
    this.withFiles.delete(pull.request.digest)
    this.components.logger.warn({ digest: pull.request.digest, err }, 'first pull failed')
    if (!(err instanceof BodyMismatchError)) return
    for (const { source } of pull.received.values()) if (source.kind === 'peer') this.components.convict?.(source, pull.request.digest, err.message)
  }

  /** Keeps a verified blob while anybody reads it and `lingerMs` after, then removes it. */
  private linger(pull: FirstPull): void {
    const lingerMs = this.init.lingerMs ?? DEFAULT_FIRST_PULL_LINGER_MS
    const arm = (): void => {
      const cancel = this.clock.schedule(lingerMs, () => {
        this.timers.delete(cancel)
        if (pull.blob.followers > 0) return arm()
        this.pulls.delete(pull.request.digest)
        this.withFiles.delete(pull.request.digest)
        this.components.removed?.(pull.request.digest)
        void pull.blob.remove()
      })
      this.timers.add(cancel)
    }
    arm()
  }
}

interface Attempt {
  source: PullSource
  answer: SourceBody
}

/** The sources of one pull, each tried once, in order; each gets `stallMs` to answer. */
class SourceAttempts {
  private index = 0
  private readonly failures: string[] = []
  private lastStatus: number | undefined

  constructor(private readonly sources: PullSource[], private readonly stallMs: number, private readonly clock: Clock, private readonly stopped: AbortSignal) {}

  /** The next source that answers from byte `from`; a refusal ends the pull at once (it is upstream's answer to anyone anonymous). */
  async next(from: number): Promise<Attempt> {
    while (this.index < this.sources.length) {
      const source = this.sources[this.index++]!
      try {
        return { source, answer: await this.ask(source, from) }
      } catch (err) {
        if (err instanceof UpstreamRefusedError || this.stopped.aborted) throw err
        if (err instanceof UpstreamUnavailableError) this.lastStatus = err.status
        this.failures.push(`${source.name}: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
    throw new UpstreamUnavailableError(this.lastStatus, `no source gave it${from > 0 ? ` from byte ${from}` : ''} (${this.failures.join('; ') || 'none known'})`)
  }

  private async ask(source: PullSource, from: number): Promise<SourceBody> {
    const controller = new AbortController()
    const onStop = (): void => controller.abort(this.stopped.reason)
    this.stopped.addEventListener('abort', onStop, { once: true })
    const cancel = this.clock.schedule(this.stallMs, () => controller.abort(new SourceStalledError(`no answer within ${this.stallMs} ms`)))
    try {
      const answer = source.open(from, controller.signal)
      // An answer that comes after its time is not read.
      answer.then((late) => controller.signal.aborted && late.body.destroy(), () => {})
      // Until the pull reads it, a body's error is kept by the stream (the read throws it), not thrown as an event.
      answer.then((taken) => taken.body.on('error', () => {}), () => {})
      return await Promise.race([answer, new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true }))])
    } finally {
      cancel()
      this.stopped.removeEventListener('abort', onStop)
    }
  }
}

/**
 * The chunks of `body`; the body is destroyed with SourceStalledError when none comes for
 * `stallMs`. One timer per stall period, not one (nor a race) per chunk: a shaped link delivers
 * thousands of small chunks a second.
 */
async function* stallGuard(body: Readable, stallMs: number, clock: Clock, name: string): AsyncGenerator<Buffer> {
  let last = clock.now()
  let cancel = (): void => {}
  const arm = (ms: number): void => {
    cancel = clock.schedule(ms, () => {
      const idle = clock.now() - last
      if (idle < stallMs) return arm(stallMs - idle)
      body.destroy(new SourceStalledError(`${name} sent nothing for ${stallMs} ms`))
    })
  }
  arm(stallMs)
  try {
    for await (const chunk of body) {
      last = clock.now()
      yield chunk as Buffer
    }
  } finally {
    cancel()
  }
}
