import type { Logger } from 'pino'
import { SOURCE_HEADER } from '../protocol/peer-api.js'
import { INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_SIZE, parseManifest } from '../oci/mediatype.js'
import { parseImageName, type ImageReference } from '../oci/reference.js'
import type { TransferLedger, TransferState } from '../observe/ledger.js'
import { ShoalError } from '../util/errors.js'

export const MEASURE_TIMEOUT_MS = 10 * 60_000
const BLOB_CONCURRENCY = 3
const ACCEPT = [...MANIFEST_MEDIA_TYPES].join(', ')

export class MeasureInputError extends ShoalError {
}

export class MeasureBusyError extends ShoalError {
  constructor() {
    super('a measurement is already running on this node')
  }
}

export interface MeasuredBlob {
  digest: string
  kind: 'manifest' | 'blob'
  size: number
  status: number
  seconds: number
  /** How this node answered: local, peer, swarm, or upstream-fallback (404: containerd would go upstream). */
  answer: string
  /** Bytes by source: each peer's `ip:port`, or `local`. */
  sources: Record<string, number>
}

export interface Measurement {
  reference: string
  platform: string
  seconds: number
  bytes: number
  blobs: MeasuredBlob[]
}

export interface MeasureInit {
  /** The node's own registry API, as the local containerd reaches it (known once it listens). */
  registryUrl: () => string
  timeoutMs?: number
}

/**
 * Pulls an image through this node's mirror path the way containerd does (manifest, then
 * config and layers), discarding the bytes, and reports per blob its time and sources.
 */
export class Measurer {
  private running = false

  constructor(private readonly components: { ledger: TransferLedger; logger: Logger }, private readonly init: MeasureInit) {}

  async measure(input: string, signal: AbortSignal): Promise<Measurement> {
    const reference = parseImageName(input.trim())
    if (!reference || (!reference.tag && !reference.digest)) {
      throw new MeasureInputError(`not a fully qualified image reference with a tag or digest: ${JSON.stringify(input.slice(0, 200))}`)
    }
    if (this.running) throw new MeasureBusyError()
    this.running = true
    const started = performance.now()
    try {
      const bounded = AbortSignal.any([signal, AbortSignal.timeout(this.init.timeoutMs ?? MEASURE_TIMEOUT_MS)])
      const { blobs, platform } = await this.pull(reference, bounded)
      const seconds = (performance.now() - started) / 1000
      this.components.logger.info({ reference: input, seconds, blobs: blobs.length }, 'measured a pull')
      return { reference: input.trim(), platform, seconds: round(seconds), bytes: blobs.reduce((sum, blob) => sum + blob.size, 0), blobs }
    } finally {
      this.running = false
    }
  }

  private async pull(reference: ImageReference, signal: AbortSignal): Promise<{ blobs: MeasuredBlob[]; platform: string }> {
    const measured: MeasuredBlob[] = []
    let top = await this.fetchManifest(reference, reference.digest ?? reference.tag!, signal)
    measured.push(top.measured)
    let platform = 'single'
    if (top.bytes && INDEX_MEDIA_TYPES.has(top.mediaType)) {
      const chosen = choosePlatform(top.bytes)
      platform = chosen.platform
      top = await this.fetchManifest(reference, chosen.digest, signal)
      measured.push(top.measured)
    }
    const parsed = top.bytes ? parseManifest(top.bytes) : undefined
    const queue = [...(parsed?.blobs ?? [])]
    const workers = Array.from({ length: BLOB_CONCURRENCY }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) measured.push(await this.fetchBlob(reference, next.digest, signal))
    })
    await Promise.all(workers)
    return { blobs: measured, platform }
  }

  private async fetchManifest(reference: ImageReference, tagOrDigest: string, signal: AbortSignal) {
    const started = performance.now()
    const response = await fetch(this.url(reference, 'manifests', tagOrDigest), { headers: { Accept: ACCEPT }, signal })
    const bytes = response.ok ? Buffer.from(await response.arrayBuffer()) : undefined
    if (!response.ok) await response.body?.cancel()
    const digest = response.headers.get('docker-content-digest') ?? tagOrDigest
    const measured = this.describe(digest, 'manifest', response, bytes?.length ?? 0, started)
    if (bytes && bytes.length > MAX_MANIFEST_SIZE) throw new MeasureInputError(`manifest ${digest} is larger than ${MAX_MANIFEST_SIZE} bytes`)
    return { measured, bytes, mediaType: response.headers.get('content-type') ?? '' }
  }

  private async fetchBlob(reference: ImageReference, digest: string, signal: AbortSignal): Promise<MeasuredBlob> {
    const started = performance.now()
    const since = Date.now()
    const response = await fetch(this.url(reference, 'blobs', digest), { signal })
    let size = 0
    if (response.ok && response.body) {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) size += chunk.length
    } else {
      await response.body?.cancel()
    }
    const measured = this.describe(digest, 'blob', response, size, started)
    const transfer = this.latestTransfer(digest, since)
    if (transfer) measured.sources = Object.fromEntries([...transfer.peers].filter(([, counters]) => counters.verified > 0).map(([peer, counters]) => [peer, counters.verified]))
    return measured
  }

  private describe(digest: string, kind: MeasuredBlob['kind'], response: Response, size: number, started: number): MeasuredBlob {
    const answer = response.ok ? response.headers.get(SOURCE_HEADER) ?? 'unknown' : response.status === 404 ? 'upstream-fallback' : 'error'
    return { digest, kind, size, status: response.status, seconds: round((performance.now() - started) / 1000), answer, sources: answer === 'local' ? { local: size } : {} }
  }

  private latestTransfer(digest: string, since: number): TransferState | undefined {
    const { ledger } = this.components
    return [...ledger.transfers.values(), ...ledger.recentTransfers()]
      .filter((transfer) => transfer.digest === digest && transfer.role !== 'seed' && transfer.startedAt >= since - 1000)
      .sort((a, b) => b.startedAt - a.startedAt)[0]
  }

  private url(reference: ImageReference, kind: 'manifests' | 'blobs', tagOrDigest: string): string {
    return `${this.init.registryUrl()}/v2/${reference.repository}/${kind}/${tagOrDigest}?ns=${encodeURIComponent(reference.registry)}`
  }
}

const NODE_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' }

/** The index entry for this machine's platform (linux/<arch>), else the first one. */
export function choosePlatform(index: Buffer): { digest: string; platform: string } {
  const manifests = (JSON.parse(index.toString('utf8')) as { manifests?: { digest?: unknown; platform?: { os?: unknown; architecture?: unknown } }[] }).manifests ?? []
  const arch = NODE_ARCH[process.arch] ?? process.arch
  const usable = manifests.filter((entry) => typeof entry.digest === 'string')
  const chosen = usable.find((entry) => entry.platform?.os === 'linux' && entry.platform.architecture === arch) ?? usable[0]
  if (!chosen) throw new MeasureInputError('the index lists no manifests')
  return { digest: chosen.digest as string, platform: `${String(chosen.platform?.os ?? '?')}/${String(chosen.platform?.architecture ?? '?')}` }
}

function round(seconds: number): number {
  return Number(seconds.toFixed(3))
}
