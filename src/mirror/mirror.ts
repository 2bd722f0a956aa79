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
import type { Swarm } from '../swarm/swarm.js'
import type { HolderPool, HolderPools } from './holder-pool.js'
import { raceHolders } from './race.js'
import { planBlob, type BlobFacts, type BlobPolicy, type BlobStep } from './plan.js'
import { PeerRoutes, RouteFailedError, type RouteRequest } from './peer-routes.js'
import { HttpTransfers } from './http-transfer.js'
import type { PeerClient, PeerManifest } from './peer-client.js'
import { agreedAnswer } from './agree.js'
import type { SwarmJoins } from './swarm-join.js'
import { countedUpload } from './upload.js'
import { abortable, type SignalOptions } from '../util/abort.js'
import { systemClock, type Clock } from '../util/clock.js'
import { Deadline } from '../util/deadline.js'
import type { FirstPulls } from '../upstream/first-pulls.js'
import { MirrorFirstPulls } from './mirror-first-pulls.js'

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
  /** The holders of each key, found and asked. */
  pools: HolderPools
  peers: PeerClient
  swarm: Swarm
  joins: SwarmJoins
  ledger: TransferLedger
  logger: Logger
  metrics: Metrics
  /** This node's first pulls from upstream (relayed through other nodes); none: content nobody holds is a 404. */
  firstPulls?: FirstPulls | undefined
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
  /** The registry containerd pulls from (`?ns=`): where a first pull goes. */
  registry?: string | undefined
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
  source: 'local' | 'peer' | 'swarm' | 'first-pull'
}

export interface ManifestAnswer {
  digest: Digest
  mediaType: string
  bytes: Buffer
  source: 'local' | 'peer' | 'first-pull'
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

/** A request with the deadline its answer is due by; the deadline's signal is the request's. */
type OnDeadline<T> = T & { deadline: Deadline }

/** Where each requested byte comes from: this node, one holder over HTTP, or the swarm. */
export class Mirror {
  private readonly routes: PeerRoutes
  private readonly clock: Clock
  private readonly firstPulls: MirrorFirstPulls | undefined
  private readonly policy: MirrorInit & BlobPolicy

  constructor(private readonly components: MirrorComponents, private readonly init: MirrorInit) {
    this.clock = components.clock ?? systemClock
    const http = new HttpTransfers({ ...components, clock: this.clock }, { stallMs: init.stallTimeoutMs })
    this.routes = new PeerRoutes({ http, joins: components.joins }, init)
    this.firstPulls = components.firstPulls && new MirrorFirstPulls(components.firstPulls, components.logger)
    this.policy = { ...init, firstPull: this.firstPulls !== undefined }
  }

  /**
   * Every request gets an answer: if none is ready (headers) within the resolve timeout plus
   * two stall timeouts, the work is cancelled and the answer is 404, so containerd goes upstream.
   * That one deadline is passed down the request's path; each wait on it takes its share.
   */
  blob(request: BlobRequest, options: SignalOptions = {}): Promise<BlobAnswer> {
    return this.answerInTime(options.signal, (deadline) => this.findBlob({ ...request, deadline }),
      () => new BlobUnknownError(request.digest, 'no source delivered in time'))
  }

  manifest(request: ManifestRequest, options: SignalOptions = {}): Promise<ManifestAnswer> {
    const label = 'digest' in request.reference ? request.reference.digest : request.reference.tag
    return this.answerInTime(options.signal, (deadline) => this.findManifest({ ...request, deadline }),
      () => new ManifestUnknownError(label, 'no source delivered in time'))
  }

  private async answerInTime<T>(lifetime: AbortSignal | undefined, work: (deadline: Deadline) => Promise<T>, late: () => Error): Promise<T> {
    const deadline = new Deadline(this.clock, this.init.resolveTimeoutMs + 2 * this.init.stallTimeoutMs, late, lifetime)
    try {
      return await abortable(work(deadline), deadline.signal)
    } finally {
      deadline.release()
    }
  }

  private async findBlob(request: OnDeadline<BlobRequest>): Promise<BlobAnswer> {
    const stored = await this.fromContentStore((signal) => this.components.content.stat(request.digest, { signal }), request.deadline)
    const facts: BlobFacts = { fromPeer: request.fromPeer !== undefined, local: stored === UNAVAILABLE ? 'unavailable' : stored ? 'held' : 'absent', head: request.head }
    const first = planBlob(facts, this.policy)
    if (first.kind === 'local') return this.localBlob(request, stored as BlobInfo)
    if (first.kind !== 'find-holders') throw this.refusal(request.digest, first)
    const holders = await this.findHolders(request.digest, request.deadline)
    if (typeof holders === 'string') {
      const step = planBlob({ ...facts, noHolder: holders, registry: request.registry !== undefined }, this.policy)
      if (step.kind === 'first-pull') return this.firstPulls!.blob({ registry: request.registry!, repository: request.name, digest: request.digest, kind: 'blobs' }, request)
      throw this.refusal(request.digest, step)
    }
    const size = await this.sizeFromHolders(request, holders)
    const range = parseRange(request.rangeHeader, size)
    const next = planBlob({ ...facts, size, range }, this.policy)
    if (next.kind === 'head') return { size, range, body: undefined, source: 'peer' }
    if (next.kind !== 'transfer') throw this.refusal(request.digest, next)
    const { body, source } = await this.transfer({ name: request.name, digest: request.digest, deadline: request.deadline, holders, size, range: range ?? { start: 0, end: size - 1 } }, next)
    return { size, range, body, source }
  }

  /** The plan's routes in order, each the fallback of the one before; a 404 naming why each failed when none gives bytes. */
  private async transfer(request: RouteRequest, plan: BlobStep & { kind: 'transfer' }): Promise<{ body: Readable; source: 'peer' | 'swarm' }> {
    const failures: string[] = []
    for (const [index, route] of plan.routes.entries()) {
      try {
        return await this.routes.run(route, request, plan.routes.length - index)
      } catch (err) {
        if (!(err instanceof RouteFailedError)) throw err
        failures.push(err.message)
        const fallback = plan.routes[index + 1]
        this.components.logger.warn({ digest: request.digest, err }, fallback ? `${route} gave nothing; trying ${fallback}` : `${route} gave nothing; no route left`)
      }
    }
    throw new BlobUnknownError(request.digest, [...failures, ...(plan.excluded ? [plan.excluded] : [])].join('; '))
  }

  private refusal(digest: Digest, step: BlobStep): OciError {
    if (step.kind === 'unavailable') return new UnavailableError(CONTENT_UNAVAILABLE)
    return new BlobUnknownError(digest, step.kind === 'not-found' ? step.why : `unexpected step ${step.kind}`)
  }

  private async findManifest(request: OnDeadline<ManifestRequest>): Promise<ManifestAnswer> {
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
    }, request.deadline)
    if (local === UNAVAILABLE && request.fromPeer) throw new UnavailableError(CONTENT_UNAVAILABLE)
    if (local && local !== UNAVAILABLE) return local
    if (request.fromPeer) throw new ManifestUnknownError(label, 'manifest is not on this node')
    const holders = await this.findHolders(label, request.deadline)
    if (typeof holders === 'string') {
      if ('digest' in reference && registry && this.policy.firstPull) return this.firstPulls!.manifest({ registry, repository: request.name, digest: reference.digest, kind: 'manifests' }, request.deadline)
      throw new ManifestUnknownError(label, holders)
    }
    const ask = (reference: string) => (peer: PeerAddress, signal: AbortSignal) => this.components.peers.fetchManifest(peer, { name: request.name, reference, registry }, { signal })
    if ('tag' in reference) return this.agreedTag(label, holders, request.deadline.signal, ask(reference.tag))
    const answer = await this.race('manifest', holders, request.deadline.signal, ask(reference.digest))
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
  private async fromContentStore<T>(call: (signal: AbortSignal) => Promise<T>, deadline: Deadline): Promise<T | typeof UNAVAILABLE> {
    if (!this.components.contentHealth.available) return UNAVAILABLE
    const lookup = deadline.within(LOCAL_LOOKUP_TIMEOUT_MS, () => new Error(`the content store did not answer within ${LOCAL_LOOKUP_TIMEOUT_MS} ms`))
    try {
      return await abortable(call(lookup.signal), lookup.signal)
    } catch (err) {
      if (deadline.signal.aborted || err instanceof OciError) throw err
      this.components.logger.warn({ err }, 'the content store failed a lookup; asking peers instead')
      void this.components.contentHealth.check()
      return UNAVAILABLE
    } finally {
      lookup.release()
    }
  }

  /** Races holders for an answer; a holder that fails is skipped for a while and its record dropped here. */
  private race<T>(question: string, holders: HolderPool, signal: AbortSignal,
    ask: (peer: PeerAddress, signal: AbortSignal) => Promise<T | undefined>): Promise<{ value: T; peer: PeerAddress } | undefined> {
    return raceHolders(holders, { question, maxHolders: MAX_HOLDERS_ASKED, maxInFlight: MAX_HOLDERS_AT_ONCE, stallMs: this.init.stallTimeoutMs }, ask, { signal })
  }

  private async localBlob(request: OnDeadline<BlobRequest>, info: BlobInfo): Promise<BlobAnswer> {
    const range = parseRange(request.rangeHeader, info.size)
    if (request.head) return { size: info.size, range, body: undefined, source: 'local' }
    let body: Readable
    try {
      body = await this.components.content.open(request.digest, { range, signal: request.deadline.signal })
    } catch (err) {
      if (err instanceof ContentNotFoundError) throw new BlobUnknownError(request.digest)
      if (err instanceof OciError || request.deadline.signal.aborted) throw err
      void this.components.contentHealth.check()
      throw new UnavailableError('the content store could not open the blob', { cause: err })
    }
    if (request.fromPeer) body = countedUpload(this.components, body, request.digest, request.fromPeer)
    return { size: info.size, range, body, source: 'local' }
  }

  /** The holders of `key` once one is found; otherwise why none was. */
  private async findHolders(key: string, deadline: Deadline): Promise<HolderPool | string> {
    const started = this.clock.now()
    const holders = this.components.pools.pool(key)
    const waitMs = deadline.share(this.init.resolveTimeoutMs)
    const first = await abortable(holders.nth(0, waitMs), deadline.signal)
    this.components.metrics.resolveDuration.observe({ router: 'dht' }, (this.clock.now() - started) / 1000)
    if (!first) return `no node holds it (DHT lookup ${holders.done ? 'complete' : `stopped after ${waitMs} ms`})`
    return holders
  }

  private async sizeFromHolders(request: OnDeadline<BlobRequest>, holders: HolderPool): Promise<number> {
    const answer = await this.race('size', holders, request.deadline.signal,
      (peer, signal) => this.components.peers.statBlob(peer, request, { signal }))
    if (!answer) throw new BlobUnknownError(request.digest, 'no holder answered for it')
    return answer.value
  }
}
