import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { Digest } from '../oci/digest.js'
import { BlobUnknownError } from '../oci/errors.js'
import type { ByteRange } from '../oci/range.js'
import type { TransferLedger } from '../observe/ledger.js'
import type { Metrics } from '../observe/metrics.js'
import { peerKey } from '../routing/router.js'
import type { HolderPool } from './holder-pool.js'
import { collectChunks, httpBlobChunks, startedStream } from './http-source.js'
import { DigestMismatchError } from '../swarm/blob-stream.js'
import type { PeerClient } from './peer-client.js'
import type { Clock } from '../util/clock.js'

/** Whole small blobs are fetched at most this often when what arrives fails the digest. */
const MAX_WHOLE_ATTEMPTS = 3

export interface HttpTransferComponents {
  peers: PeerClient
  ledger: TransferLedger
  metrics: Metrics
  logger: Logger
  /** Times a holder that stops sending. */
  clock: Clock
}

export interface HttpBlobRequest {
  name: string
  digest: Digest
  signal: AbortSignal
}

/** Blobs taken whole from one holder at a time over HTTP, recorded in the ledger like swarm transfers. */
export class HttpTransfers {
  private count = 0

  constructor(private readonly components: HttpTransferComponents, private readonly init: { stallMs: number }) {}

  /**
   * All of a small blob, verified against its digest, in memory. Bytes that fail the digest are
   * thrown away and the blob is fetched again (the holder that sent them is banned).
   */
  async fetchWhole(request: HttpBlobRequest, holders: HolderPool, size: number): Promise<Buffer> {
    const record = this.record(request.digest, size)
    for (let attempt = 1; ; attempt++) {
      try {
        const bytes = await collectChunks(httpBlobChunks({ ...this.components, holders, onBytes: record.onBytes },
          { name: request.name, digest: request.digest, size, range: { start: 0, end: size - 1 }, stallMs: this.init.stallMs }, { signal: request.signal }))
        record.finish()
        return bytes
      } catch (err) {
        if (err instanceof DigestMismatchError && attempt < MAX_WHOLE_ATTEMPTS && !request.signal.aborted) continue
        record.finish(err as Error)
        throw new BlobUnknownError(request.digest, 'no holder delivered it over HTTP', { cause: err })
      }
    }
  }

  /** A range of a blob as it arrives; resolves once the first bytes are there. */
  async stream(request: HttpBlobRequest, holders: HolderPool, size: number, range: ByteRange): Promise<Readable> {
    const record = this.record(request.digest, size)
    const chunks = httpBlobChunks({ ...this.components, holders, onBytes: record.onBytes },
      { name: request.name, digest: request.digest, size, range, stallMs: this.init.stallMs }, { signal: request.signal })
    let stream: Readable
    try {
      stream = await startedStream(chunks)
    } catch (err) {
      record.finish(err as Error)
      throw new BlobUnknownError(request.digest, 'no holder delivered it over HTTP', { cause: err })
    }
    stream.once('close', () => record.finish(stream.errored ?? undefined))
    return stream
  }

  private record(digest: Digest, size: number) {
    const { ledger, metrics, logger } = this.components
    const key = `http:${digest}:${++this.count}`
    ledger.record({ type: 'transfer-started', key, digest, size, role: 'http' })
    const started = performance.now()
    let finished = false
    return {
      onBytes: (peer: { host: string; port: number }, bytes: number) => {
        metrics.peerBytes.inc({ direction: 'down', via: 'http' }, bytes)
        ledger.record({ type: 'bytes-received', key, peer: peerKey(peer), bytes })
      },
      finish: (error?: Error) => {
        if (finished) return
        finished = true
        ledger.record({ type: 'transfer-finished', key, outcome: error ? 'failed' : 'complete', ...(error ? { error: error.message } : {}) })
        const seconds = Number(((performance.now() - started) / 1000).toFixed(3))
        if (error) logger.warn({ digest, size, seconds, err: error }, 'transfer from a holder over HTTP failed')
        else logger.info({ digest, size, seconds }, 'transfer from a holder over HTTP complete')
      },
    }
  }
}
