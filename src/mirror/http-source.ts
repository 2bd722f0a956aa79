import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import type { ByteRange } from '../oci/range.js'
import { peerKey, type PeerAddress } from '../routing/router.js'
import { DigestMismatchError } from '../swarm/blob-stream.js'
import type { HolderPool } from './holder-pool.js'
import type { PeerClient } from './peer-client.js'
import type { SignalOptions } from '../util/abort.js'
import type { Clock } from '../util/clock.js'
import { describeError, ShoalError } from '../util/errors.js'

export class NoSourceError extends ShoalError {
  constructor(digest: string, why: string) {
    super(`no peer could deliver ${digest}: ${why}`)
  }
}

export interface HttpSourceInit {
  name: string
  digest: Digest
  size: number
  range: ByteRange
  stallMs: number
}

export interface HttpSourceComponents {
  peers: PeerClient
  holders: HolderPool
  logger: Logger
  onBytes: (peer: PeerAddress, bytes: number) => void
  /** Times a holder that stops sending. */
  clock: Clock
}

/**
 * The bytes of a range of a blob from the holders over HTTP, one at a time: when one fails or
 * stalls, the next continues from the same offset. A whole-blob stream is hashed as it goes and
 * its last chunk is held back until the digest matches.
 */
export async function* httpBlobChunks(components: HttpSourceComponents, init: HttpSourceInit, options: SignalOptions = {}): AsyncGenerator<Buffer> {
  const signal = options.signal ?? new AbortController().signal
  const { range, digest, size } = init
  const hash = range.start === 0 && range.end === size - 1 ? createHash('sha256') : undefined
  let position = range.start
  let held: Buffer | undefined
  const contributors = new Set<PeerAddress>()
  for (let index = 0; position <= range.end; index++) {
    const peer = await components.holders.nth(index, init.stallMs)
    if (!peer) throw new NoSourceError(digest, index === 0 ? 'no holder found' : `all ${index} holders failed`)
    if (components.holders.isBanned(peer)) continue
    const attempt = new AbortController()
    const onAbort = (): void => attempt.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      const partial = position !== 0 || range.end !== size - 1
      const request = { name: init.name, digest, size, range: partial ? { start: position, end: range.end } : undefined }
      const body = await components.holders.ask(peer, (holder, asked) => components.peers.openBlob(holder, request, { signal: asked }), { signal: attempt.signal, question: 'blob' })
      if (!body) continue
      for await (const chunk of withStallTimeout(body, init.stallMs, attempt, components.clock)) {
        if (position + chunk.length > range.end + 1) throw new Error('peer sent more bytes than asked for')
        hash?.update(chunk)
        contributors.add(peer)
        position += chunk.length
        components.onBytes(peer, chunk.length)
        if (held) yield held
        held = chunk
      }
    } catch (err) {
      if (signal.aborted) throw err
      components.holders.failed(peer, describeError(err))
      components.logger.warn({ peer: peerKey(peer), digest, position, err }, 'peer stream failed; trying the next holder')
    } finally {
      signal.removeEventListener('abort', onAbort)
      attempt.abort()
    }
  }
  if (hash && `sha256:${hash.digest('hex')}` !== digest) {
    blameSenders(components.holders, contributors)
    throw new DigestMismatchError(digest)
  }
  if (held) yield held
}

/** A lone sender of bytes that fail the digest lied; of several, nobody can tell which, so each is only skipped. */
function blameSenders(holders: HolderPool, senders: Set<PeerAddress>): void {
  for (const peer of senders) {
    if (senders.size === 1) holders.lied(peer, 'its bytes do not hash to the digest')
    else holders.failed(peer, 'bytes from it and others did not hash to the digest')
  }
}

async function* withStallTimeout(body: Readable, stallMs: number, attempt: AbortController, clock: Clock): AsyncGenerator<Buffer> {
  let cancel = (): void => {}
  const arm = (): void => {
    cancel()
    cancel = clock.schedule(stallMs, () => {
      const error = new Error(`no bytes for ${stallMs} ms`)
      attempt.abort(error)
      body.destroy(error)
    })
  }
  arm()
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      arm()
      yield chunk
    }
  } finally {
    cancel()
  }
}

/**
 * Waits for the first chunk, then returns a stream of it and the rest: nothing is promised to
 * the client (no headers) until a source is delivering. Throws what the source threw first.
 */
export async function startedStream(chunks: AsyncGenerator<Buffer>): Promise<Readable> {
  const first = await chunks.next()
  async function* all(): AsyncGenerator<Buffer> {
    try {
      if (!first.done) yield first.value
      yield* chunks
    } finally {
      await chunks.return(undefined)
    }
  }
  return Readable.from(all(), { objectMode: false })
}

/** All of a small blob, verified, in memory. */
export async function collectChunks(chunks: AsyncGenerator<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const chunk of chunks) parts.push(chunk)
  return Buffer.concat(parts)
}
