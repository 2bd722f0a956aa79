import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Logger } from 'pino'
import type { BlobInfo, ContentProvider } from '../content/provider.js'
import { ContentNotFoundError } from '../content/provider.js'
import { readSmallBlob } from '../content/read.js'
import type { Digest } from '../oci/digest.js'
import { BlobUnknownError, ManifestUnknownError } from '../oci/errors.js'
import { MAX_MANIFEST_SIZE, parseManifest } from '../oci/mediatype.js'
import { parseRange, type ByteRange } from '../oci/range.js'
import { tagReference } from '../oci/reference.js'
import type { TransferLedger } from '../observe/ledger.js'
import type { Metrics } from '../observe/metrics.js'
import { peerKey, type Router } from '../routing/router.js'
import { SwarmBlobStream } from '../swarm/blob-stream.js'
import type { Swarm } from '../swarm/swarm.js'
import { HolderSearch } from './holders.js'
import { collectChunks, httpBlobChunks, startedStream } from './http-source.js'
import type { PeerClient } from './peer-client.js'
import type { SwarmJoins } from './swarm-join.js'
import type { SignalOptions } from '../util/abort.js'

export interface MirrorInit {
  /** How long a DHT lookup may take to find a first holder before the answer is 404. */
  resolveTimeoutMs: number
  /** Blobs at least this large go through the swarm; smaller ones come whole from one holder. */
  swarmMinSize: number
  /** A source that delivers nothing for this long is dropped (a stream is cut). */
  stallTimeoutMs: number
  resolveTags: boolean
  /** Every blob streamed whole from one holder over HTTP, never the swarm (Spegel's way; for comparison). */
  singleSource?: boolean
  /** Tags whose `registry/repository:tag` matches one of these are not resolved through peers. */
  registryFilters?: RegExp[]
}

export interface MirrorComponents {
  content: ContentProvider
  router: Router
  peers: PeerClient
  swarm: Swarm
  joins: SwarmJoins
  ledger: TransferLedger
  logger: Logger
  metrics: Metrics
}

export interface BlobRequest {
  name: string
  digest: Digest
  rangeHeader: string | undefined
  head: boolean
  /** Set (to the peer's address) when another node asks: local content only. */
  fromPeer: string | undefined
}

export interface ManifestRequest {
  name: string
  reference: { digest: Digest } | { tag: string }
  registry: string | undefined
  fromPeer: string | undefined
}

export interface BlobAnswer {
  size: number
  range: ByteRange | undefined
  body: Readable | undefined
  source: 'local' | 'peer' | 'swarm'
}

export interface ManifestAnswer {
  digest: Digest
  mediaType: string
  bytes: Buffer
  source: 'local' | 'peer'
}

const MAX_MANIFEST_HOLDERS = 3

type Signalled<T> = T & { signal: AbortSignal }

/** Where each requested byte comes from: this node, one holder over HTTP, or the swarm. */
export class Mirror {
  private httpTransfers = 0

  constructor(private readonly components: MirrorComponents, private readonly init: MirrorInit) {}

  /**
   * Every request gets an answer: if none is ready (headers) within the resolve timeout plus
   * two stall timeouts, the work is cancelled and the answer is 404, so containerd goes upstream.
   */
  blob(request: BlobRequest, options: SignalOptions = {}): Promise<BlobAnswer> {
    return this.answerInTime(options.signal, (signal) => this.findBlob({ ...request, signal }),
      () => new BlobUnknownError(request.digest, 'no source delivered in time'))
  }

  manifest(request: ManifestRequest, options: SignalOptions = {}): Promise<ManifestAnswer> {
    const label = 'digest' in request.reference ? request.reference.digest : request.reference.tag
    return this.answerInTime(options.signal, (signal) => this.findManifest({ ...request, signal }),
      () => new ManifestUnknownError(label, 'no source delivered in time'))
  }

  private async answerInTime<T>(lifetime: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<T>, late: () => Error): Promise<T> {
    const deadline = this.init.resolveTimeoutMs + 2 * this.init.stallTimeoutMs
    const cancel = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        cancel.abort(late())
        reject(late())
      }, deadline)
    })
    try {
      return await Promise.race([work(lifetime ? AbortSignal.any([lifetime, cancel.signal]) : cancel.signal), expired])
    } finally {
      clearTimeout(timer)
    }
  }

  private async findBlob(request: Signalled<BlobRequest>): Promise<BlobAnswer> {
    const local = await this.components.content.stat(request.digest, { signal: request.signal })
    if (local) return this.localBlob(request, local)
    if (request.fromPeer) throw new BlobUnknownError(request.digest, 'blob is not on this node')
    const holders = await this.findHolders(request.digest, request.signal, (why) => new BlobUnknownError(request.digest, why))
    const size = await this.sizeFromHolders(request, holders)
    const range = parseRange(request.rangeHeader, size)
    if (request.head) return { size, range, body: undefined, source: 'peer' }
    const whole = { start: 0, end: size - 1 }
    if (this.init.singleSource) return { size, range, body: await this.streamFromHolders(request, holders, size, range ?? whole), source: 'peer' }
    if (size < this.init.swarmMinSize) {
      const bytes = await this.fetchWhole(request, holders, size)
      return { size, range, body: Readable.from([range ? bytes.subarray(range.start, range.end + 1) : bytes]), source: 'peer' }
    }
    const download = await this.components.joins.join(request.digest, holders)
    if (!download) {
      this.components.logger.info({ digest: request.digest }, 'no holder gave metainfo in time; streaming from one holder over HTTP')
      return { size, range, body: await this.streamFromHolders(request, holders, size, range ?? whole), source: 'peer' }
    }
    const stream = new SwarmBlobStream(download, range ?? whole, this.init.stallTimeoutMs)
    try {
      await stream.firstBytesReady()
    } catch (err) {
      stream.destroy()
      throw new BlobUnknownError(request.digest, 'the swarm delivered nothing', { cause: err })
    }
    return { size, range, body: stream, source: 'swarm' }
  }

  private async findManifest(request: Signalled<ManifestRequest>): Promise<ManifestAnswer> {
    const { reference, registry } = request
    const label = 'digest' in reference ? reference.digest : registry ? tagReference(registry, request.name, reference.tag) : reference.tag
    if ('tag' in reference && !this.init.resolveTags) throw new ManifestUnknownError(reference.tag, 'tag resolution is disabled on this node (--resolve-tags=false)')
    if ('tag' in reference && registry === undefined) throw new ManifestUnknownError(reference.tag, 'resolving a tag needs the registry in ?ns=<registry>, as containerd sends it')
    if ('tag' in reference && this.init.registryFilters?.some((filter) => filter.test(label))) throw new ManifestUnknownError(label, 'excluded by --registry-filters')
    const digest = 'digest' in reference ? reference.digest : await this.components.content.resolve(label, { signal: request.signal })
    const bytes = digest && await readSmallBlob(this.components.content, digest, MAX_MANIFEST_SIZE, { signal: request.signal })
    const manifest = bytes && parseManifest(bytes)
    if (digest && bytes && manifest) return { digest, mediaType: manifest.mediaType, bytes, source: 'local' }
    if (request.fromPeer) throw new ManifestUnknownError(label, 'manifest is not on this node')
    const holders = await this.findHolders(label, request.signal, (why) => new ManifestUnknownError(label, why))
    for (let index = 0; index < MAX_MANIFEST_HOLDERS; index++) {
      const peer = await holders.nth(index, this.init.stallTimeoutMs)
      if (!peer) break
      try {
        const wanted = 'digest' in reference ? reference.digest : reference.tag
        const answer = await this.components.peers.fetchManifest(peer, { name: request.name, reference: wanted, registry },
          { signal: AbortSignal.any([request.signal, AbortSignal.timeout(this.init.stallTimeoutMs)]) })
        if (answer) return { ...answer, source: 'peer' }
      } catch (err) {
        this.components.logger.warn({ peer: peerKey(peer), reference: label, err }, 'peer could not give the manifest')
      }
    }
    throw new ManifestUnknownError(label)
  }

  private async localBlob(request: Signalled<BlobRequest>, info: BlobInfo): Promise<BlobAnswer> {
    const range = parseRange(request.rangeHeader, info.size)
    if (request.head) return { size: info.size, range, body: undefined, source: 'local' }
    let body: Readable
    try {
      body = await this.components.content.open(request.digest, { range, signal: request.signal })
    } catch (err) {
      if (err instanceof ContentNotFoundError) throw new BlobUnknownError(request.digest)
      throw err
    }
    if (request.fromPeer) body = this.throttledUpload(body, request.digest, request.fromPeer)
    return { size: info.size, range, body, source: 'local' }
  }

  /** Uploads to peers share the node's upload limit with the BitTorrent wire, and are counted. */
  private throttledUpload(body: Readable, digest: Digest, peer: string): Readable {
    const { ledger, metrics, swarm } = this.components
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        ledger.record({ type: 'served', digest, peer, bytes: chunk.length })
        metrics.swarmBytes.inc({ direction: 'up', via: 'http' }, chunk.length)
        done(null, chunk)
      },
    })
    const throttle = swarm.uploadThrottle()
    void pipeline(body, throttle, counter).catch(() => {})
    return counter
  }

  private async findHolders(key: string, signal: AbortSignal, notFound: (why: string) => Error): Promise<HolderSearch> {
    const started = performance.now()
    const holders = new HolderSearch(this.components.router, key, { signal })
    const first = await holders.nth(0, this.init.resolveTimeoutMs)
    this.components.metrics.resolveDuration.observe({ router: 'dht' }, (performance.now() - started) / 1000)
    if (!first) {
      const why = `no node holds it (DHT lookup ${holders.done ? 'complete' : `stopped after ${this.init.resolveTimeoutMs} ms`})`
      throw notFound(why)
    }
    return holders
  }

  private async sizeFromHolders(request: Signalled<BlobRequest>, holders: HolderSearch): Promise<number> {
    for (let index = 0; ; index++) {
      const peer = await holders.nth(index, this.init.stallTimeoutMs)
      if (!peer) throw new BlobUnknownError(request.digest, 'no holder answered for it')
      try {
        const size = await this.components.peers.statBlob(peer, request, { signal: AbortSignal.any([request.signal, AbortSignal.timeout(this.init.stallTimeoutMs)]) })
        if (size !== undefined) return size
      } catch (err) {
        this.components.logger.debug({ peer: peerKey(peer), digest: request.digest, err }, 'holder did not answer HEAD')
      }
    }
  }

  private async fetchWhole(request: Signalled<BlobRequest>, holders: HolderSearch, size: number): Promise<Buffer> {
    const record = this.recordHttpTransfer(request.digest, size)
    try {
      const bytes = await collectChunks(httpBlobChunks({ ...this.components, holders, onBytes: record.onBytes },
        { name: request.name, digest: request.digest, size, range: { start: 0, end: size - 1 }, stallMs: this.init.stallTimeoutMs }, { signal: request.signal }))
      record.finish()
      return bytes
    } catch (err) {
      record.finish(err as Error)
      throw new BlobUnknownError(request.digest, 'no holder delivered it over HTTP', { cause: err })
    }
  }

  private async streamFromHolders(request: Signalled<BlobRequest>, holders: HolderSearch, size: number, range: ByteRange): Promise<Readable> {
    const record = this.recordHttpTransfer(request.digest, size)
    const chunks = httpBlobChunks({ ...this.components, holders, onBytes: record.onBytes },
      { name: request.name, digest: request.digest, size, range, stallMs: this.init.stallTimeoutMs }, { signal: request.signal })
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

  private recordHttpTransfer(digest: Digest, size: number) {
    const { ledger, metrics, logger } = this.components
    const key = `http:${digest}:${++this.httpTransfers}`
    ledger.record({ type: 'transfer-started', key, digest, size, role: 'http' })
    const started = performance.now()
    let finished = false
    return {
      onBytes: (peer: { host: string; port: number }, bytes: number) => {
        metrics.swarmBytes.inc({ direction: 'down', via: 'http' }, bytes)
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
