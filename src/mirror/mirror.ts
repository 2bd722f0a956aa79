import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { BlobInfo, ContentProvider } from '../content/provider.js'
import { ContentNotFoundError } from '../content/provider.js'
import { readSmallBlob } from '../content/read.js'
import type { Digest } from '../oci/digest.js'
import { BlobUnknownError, ManifestUnknownError, OciError, UnavailableError } from '../oci/errors.js'
import { MAX_MANIFEST_SIZE, parseManifest } from '../oci/mediatype.js'
import { parseRange, type ByteRange } from '../oci/range.js'
import { tagReference } from '../oci/reference.js'
import type { TransferLedger } from '../observe/ledger.js'
import type { Metrics } from '../observe/metrics.js'
import type { PeerAddress } from '../routing/router.js'
import { SwarmBlobStream } from '../swarm/blob-stream.js'
import type { Swarm } from '../swarm/swarm.js'
import type { HolderHealth } from './holder-health.js'
import type { HolderPool, HolderPools } from './holder-pool.js'
import { raceHolders } from './race.js'
import { HttpTransfers } from './http-transfer.js'
import type { PeerClient, PeerManifest } from './peer-client.js'
import { agreedAnswer } from './agree.js'
import type { SwarmJoins } from './swarm-join.js'
import { countedUpload } from './upload.js'
import { abortable, type SignalOptions } from '../util/abort.js'
import { systemClock, type Clock } from '../util/clock.js'

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
  /**
   * Whether every peer proved the cluster key. If not (open swarm), a partial range is only
   * served from the swarm, and its end only once the whole blob hashed to its digest.
   */
  authenticatedPeers?: boolean
}

export interface MirrorComponents {
  content: ContentProvider
  /** Whether the content store answers; while it does not, it is not asked. */
  contentHealth: { readonly available: boolean; check(): Promise<boolean> }
  holderHealth: HolderHealth
  /** The holders of each key, found and asked. */
  pools: HolderPools
  peers: PeerClient
  swarm: Swarm
  joins: SwarmJoins
  ledger: TransferLedger
  logger: Logger
  metrics: Metrics
  /** Times the answer deadline. */
  clock?: Clock
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

/** Holders asked in all for one answer (dead ones fail fast), and at once. */
const MAX_HOLDERS_ASKED = 64
const MAX_HOLDERS_AT_ONCE = 4
/** Longest wait for the local content store on a request's path; it is health-checked apart. */
export const LOCAL_LOOKUP_TIMEOUT_MS = 2_000
/** How long the DHT may take to name a holder before the answer is 404 (`--mirror-resolve-timeout`). */
export const DEFAULT_RESOLVE_TIMEOUT_MS = 500
/** A source that delivers nothing for this long is dropped (`--stall-timeout`). */
export const DEFAULT_STALL_TIMEOUT_MS = 10_000
const UNAVAILABLE = Symbol('content store unavailable')
const CONTENT_UNAVAILABLE = 'the content store on this node cannot be used (containerd does not answer, or its files cannot be read)'

type Signalled<T> = T & { signal: AbortSignal }

/** Where each requested byte comes from: this node, one holder over HTTP, or the swarm. */
export class Mirror {
  private readonly http: HttpTransfers

  constructor(private readonly components: MirrorComponents, private readonly init: MirrorInit) {
    this.http = new HttpTransfers({ ...components, health: components.holderHealth }, { stallMs: init.stallTimeoutMs })
  }

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
    let cancelTimer = (): void => {}
    const expired = new Promise<never>((_, reject) => {
      cancelTimer = (this.components.clock ?? systemClock).schedule(deadline, () => {
        cancel.abort(late())
        reject(late())
      })
    })
    try {
      return await Promise.race([work(lifetime ? AbortSignal.any([lifetime, cancel.signal]) : cancel.signal), expired])
    } finally {
      cancelTimer()
    }
  }

  private async findBlob(request: Signalled<BlobRequest>): Promise<BlobAnswer> {
    const local = await this.fromContentStore((signal) => this.components.content.stat(request.digest, { signal }), request.signal)
    if (local === UNAVAILABLE && request.fromPeer) throw new UnavailableError(CONTENT_UNAVAILABLE)
    if (local && local !== UNAVAILABLE) return this.localBlob(request, local)
    if (request.fromPeer) throw new BlobUnknownError(request.digest, 'blob is not on this node')
    const holders = await this.findHolders(request.digest, request.signal, (why) => new BlobUnknownError(request.digest, why))
    const size = await this.sizeFromHolders(request, holders)
    const range = parseRange(request.rangeHeader, size)
    if (request.head) return { size, range, body: undefined, source: 'peer' }
    const whole = { start: 0, end: size - 1 }
    if (this.init.singleSource) return { size, range, body: await this.streamOverHttp(request, holders, size, range), source: 'peer' }
    if (size < this.init.swarmMinSize) {
      const bytes = await this.http.fetchWhole(request, holders, size)
      return { size, range, body: Readable.from([range ? bytes.subarray(range.start, range.end + 1) : bytes]), source: 'peer' }
    }
    const download = await this.components.joins.join(request.digest, holders, size).catch((err: unknown) => {
      this.components.logger.error({ digest: request.digest, err }, 'could not start the swarm download')
      return undefined
    })
    if (!download) {
      this.components.logger.info({ digest: request.digest }, 'no holder gave metainfo in time; streaming from one holder over HTTP')
      return { size, range, body: await this.streamOverHttp(request, holders, size, range), source: 'peer' }
    }
    const stream = new SwarmBlobStream(download, range ?? whole, this.init.stallTimeoutMs, !this.init.authenticatedPeers)
    try {
      await stream.firstBytesReady()
    } catch (err) {
      stream.destroy()
      if (request.signal.aborted) throw err
      this.components.logger.warn({ digest: request.digest, err }, 'the swarm delivered nothing; streaming from one holder over HTTP')
      return { size, range, body: await this.streamOverHttp(request, holders, size, range), source: 'peer' }
    }
    return { size, range, body: stream, source: 'swarm' }
  }

  /**
   * A whole blob (hashed on the way, its last chunk held until it matches) or, from holders
   * that proved the cluster key, a range of it. In an open swarm nobody vouches for a range's
   * bytes, so that is a 404 and containerd asks the registry.
   */
  private streamOverHttp(request: Signalled<BlobRequest>, holders: HolderPool, size: number, range: ByteRange | undefined): Promise<Readable> {
    if (range && !this.init.authenticatedPeers && !(range.start === 0 && range.end === size - 1)) {
      throw new BlobUnknownError(request.digest, 'an open swarm serves a part of a blob only from the swarm, whose end waits for the whole blob to be verified')
    }
    return this.http.stream(request, holders, size, range ?? { start: 0, end: size - 1 })
  }

  private async findManifest(request: Signalled<ManifestRequest>): Promise<ManifestAnswer> {
    const { reference, registry } = request
    const label = 'digest' in reference ? reference.digest : registry ? tagReference(registry, request.name, reference.tag) : reference.tag
    if ('tag' in reference && !this.init.resolveTags) throw new ManifestUnknownError(reference.tag, 'tag resolution is disabled on this node (--resolve-tags=false)')
    if ('tag' in reference && registry === undefined) throw new ManifestUnknownError(reference.tag, 'resolving a tag needs the registry in ?ns=<registry>, as containerd sends it')
    if ('tag' in reference && this.init.registryFilters?.some((filter) => filter.test(label))) throw new ManifestUnknownError(label, 'excluded by --registry-filters')
    const local = await this.fromContentStore(async (signal) => {
      const digest = 'digest' in reference ? reference.digest : await this.components.content.resolve(label, { signal })
      const bytes = digest && await readSmallBlob(this.components.content, digest, MAX_MANIFEST_SIZE, { signal })
      const manifest = bytes && parseManifest(bytes)
      return digest && bytes && manifest ? { digest, mediaType: manifest.mediaType, bytes, source: 'local' as const } : undefined
    }, request.signal)
    if (local === UNAVAILABLE && request.fromPeer) throw new UnavailableError(CONTENT_UNAVAILABLE)
    if (local && local !== UNAVAILABLE) return local
    if (request.fromPeer) throw new ManifestUnknownError(label, 'manifest is not on this node')
    const holders = await this.findHolders(label, request.signal, (why) => new ManifestUnknownError(label, why))
    const ask = (reference: string) => (peer: PeerAddress, signal: AbortSignal) => this.components.peers.fetchManifest(peer, { name: request.name, reference, registry }, { signal })
    if ('tag' in reference) return this.agreedTag(label, holders, request.signal, ask(reference.tag))
    const answer = await this.race('manifest', holders, request.signal, ask(reference.digest))
    if (!answer) throw new ManifestUnknownError(label, 'no holder gave the manifest')
    return { ...answer.value, source: 'peer' }
  }

  /** A tag resolves only to what every holder that answers in time says; on any disagreement, 404 (containerd asks the registry). */
  private async agreedTag(label: string, holders: HolderPool, signal: AbortSignal, ask: (peer: PeerAddress, signal: AbortSignal) => Promise<PeerManifest | undefined>): Promise<ManifestAnswer> {
    const { logger } = this.components
    const agreement = await agreedAnswer(holders, { question: 'manifest', maxHolders: MAX_HOLDERS_ASKED, stallMs: this.init.stallTimeoutMs },
      ask, (manifest) => manifest.digest, { signal })
    if (!agreement) throw new ManifestUnknownError(label, 'no holder gave the manifest')
    if ('disagreement' in agreement) {
      logger.warn({ tag: label, answers: agreement.disagreement }, 'holders disagree on a tag; answering 404 so containerd asks the registry')
      throw new ManifestUnknownError(label, 'holders disagree on what this tag points to')
    }
    return { ...agreement.value, source: 'peer' }
  }

  /**
   * A call to the local content store with a short deadline. UNAVAILABLE when the store does not
   * answer (or is known not to): a request from containerd then goes on to the peers, a peer's
   * request gets 503.
   */
  private async fromContentStore<T>(call: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T | typeof UNAVAILABLE> {
    if (!this.components.contentHealth.available) return UNAVAILABLE
    try {
      return await call(AbortSignal.any([signal, AbortSignal.timeout(LOCAL_LOOKUP_TIMEOUT_MS)]))
    } catch (err) {
      if (signal.aborted || err instanceof OciError) throw err
      this.components.logger.warn({ err }, 'the content store failed a lookup; asking peers instead')
      void this.components.contentHealth.check()
      return UNAVAILABLE
    }
  }

  /** Races holders for an answer; a holder that fails is skipped for a while and its record dropped here. */
  private race<T>(question: string, holders: HolderPool, signal: AbortSignal,
    ask: (peer: PeerAddress, signal: AbortSignal) => Promise<T | undefined>): Promise<{ value: T; peer: PeerAddress } | undefined> {
    return raceHolders(holders, { question, maxHolders: MAX_HOLDERS_ASKED, maxInFlight: MAX_HOLDERS_AT_ONCE, stallMs: this.init.stallTimeoutMs }, ask, { signal })
  }

  private async localBlob(request: Signalled<BlobRequest>, info: BlobInfo): Promise<BlobAnswer> {
    const range = parseRange(request.rangeHeader, info.size)
    if (request.head) return { size: info.size, range, body: undefined, source: 'local' }
    let body: Readable
    try {
      body = await this.components.content.open(request.digest, { range, signal: request.signal })
    } catch (err) {
      if (err instanceof ContentNotFoundError) throw new BlobUnknownError(request.digest)
      if (err instanceof OciError || request.signal.aborted) throw err
      void this.components.contentHealth.check()
      throw new UnavailableError('the content store could not open the blob', { cause: err })
    }
    if (request.fromPeer) body = countedUpload(this.components, body, request.digest, request.fromPeer)
    return { size: info.size, range, body, source: 'local' }
  }

  private async findHolders(key: string, signal: AbortSignal, notFound: (why: string) => Error): Promise<HolderPool> {
    const started = performance.now()
    const holders = this.components.pools.pool(key)
    const first = await abortable(holders.nth(0, this.init.resolveTimeoutMs), signal)
    this.components.metrics.resolveDuration.observe({ router: 'dht' }, (performance.now() - started) / 1000)
    if (!first) {
      const why = `no node holds it (DHT lookup ${holders.done ? 'complete' : `stopped after ${this.init.resolveTimeoutMs} ms`})`
      throw notFound(why)
    }
    return holders
  }

  private async sizeFromHolders(request: Signalled<BlobRequest>, holders: HolderPool): Promise<number> {
    const answer = await this.race('size', holders, request.signal,
      (peer, signal) => this.components.peers.statBlob(peer, request, { signal }))
    if (!answer) throw new BlobUnknownError(request.digest, 'no holder answered for it')
    return answer.value
  }
}
