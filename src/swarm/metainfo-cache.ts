import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { BlobInfo, ContentProvider } from '../content/provider.js'
import { ContentNotFoundError } from '../content/provider.js'
import { digestAlgorithm, digestHex, type Digest } from '../oci/digest.js'
import type { TransferLedger } from '../observe/ledger.js'
import type { Metrics } from '../observe/metrics.js'
import { abortable, type SignalOptions } from '../util/abort.js'
import { Semaphore } from '../util/semaphore.js'
import { computeMetainfo, decodeMetainfo, InvalidMetainfoError, MAX_METAINFO_BYTES, type Metainfo } from './metainfo.js'

export const DEFAULT_MEMORY_ENTRIES = 2048
export const DEFAULT_HASH_CONCURRENCY = 2

export interface MetainfoCacheInit {
  /** `<data-dir>`; files go to `<data-dir>/metainfo/<algorithm>/<hex>.torrent`. */
  dataDir: string
  memoryEntries?: number
  /** Blobs hashed at once; background prefetching only ever takes one of these. */
  hashConcurrency?: number
}

/**
 * Metainfo per digest, computed at most once per node: from memory, else from the data dir,
 * else by one read of the blob from the content store.
 */
export class MetainfoCache {
  private readonly memory = new Map<Digest, Metainfo>()
  private readonly computing = new Map<Digest, Promise<Metainfo>>()
  private readonly semaphore: Semaphore
  private readonly memoryEntries: number
  private readonly prefetchQueue: BlobInfo[] = []
  private prefetching = false
  private stopped = false

  constructor(private readonly components: { content: ContentProvider; logger: Logger; metrics: Metrics; ledger?: TransferLedger }, private readonly init: MetainfoCacheInit) {
    this.semaphore = new Semaphore(init.hashConcurrency ?? DEFAULT_HASH_CONCURRENCY)
    this.memoryEntries = init.memoryEntries ?? DEFAULT_MEMORY_ENTRIES
  }

  /** Metainfo already known to this node, without hashing. */
  async cached(digest: Digest): Promise<Metainfo | undefined> {
    const inMemory = this.memory.get(digest)
    if (inMemory) return inMemory
    let bytes: Buffer
    try {
      bytes = await readFile(this.pathOf(digest))
    } catch {
      return undefined
    }
    try {
      if (bytes.length > MAX_METAINFO_BYTES) throw new InvalidMetainfoError('cache file too large')
      const metainfo = decodeMetainfo(bytes, digest)
      this.keep(metainfo)
      return metainfo
    } catch (err) {
      this.components.logger.warn({ digest, err }, 'ignoring a damaged metainfo cache file')
      return undefined
    }
  }

  /** Cached metainfo, or computed now from the local content (one read, deduplicated). */
  async obtain(digest: Digest, options: SignalOptions = {}): Promise<Metainfo> {
    const known = await this.cached(digest)
    this.components.metrics.metainfoCache.inc({ result: known ? 'hit' : 'miss' })
    if (known) return known
    let pending = this.computing.get(digest)
    if (!pending) {
      pending = this.semaphore.run(() => this.compute(digest)).finally(() => this.computing.delete(digest))
      this.computing.set(digest, pending)
    }
    return abortable(pending, options.signal)
  }

  /** Keeps metainfo learned from a peer once the blob it describes has been verified. */
  async remember(metainfo: Metainfo): Promise<void> {
    this.keep(metainfo)
    await this.write(metainfo)
  }

  /** Hashes these blobs in the background, one at a time, so peers rarely wait for it. */
  prefetch(blobs: BlobInfo[]): void {
    this.prefetchQueue.push(...blobs)
    if (!this.prefetching) void this.drainPrefetch()
  }

  start(): void {
    this.stopped = false
  }

  stop(): void {
    this.stopped = true
    this.prefetchQueue.length = 0
  }

  private async drainPrefetch(): Promise<void> {
    this.prefetching = true
    try {
      for (let blob = this.prefetchQueue.shift(); blob && !this.stopped; blob = this.prefetchQueue.shift()) {
        if (this.computing.has(blob.digest) || (await this.cached(blob.digest))) continue
        try {
          await this.obtain(blob.digest)
        } catch (err) {
          if (!(err instanceof ContentNotFoundError)) this.components.logger.warn({ digest: blob.digest, err }, 'metainfo prefetch failed')
        }
      }
    } finally {
      this.prefetching = false
    }
  }

  private async compute(digest: Digest): Promise<Metainfo> {
    const { content, logger, metrics } = this.components
    const info = await content.stat(digest)
    if (!info) throw new ContentNotFoundError(digest)
    const started = performance.now()
    const metainfo = await computeMetainfo(digest, info.size, await content.open(digest))
    const seconds = (performance.now() - started) / 1000
    metrics.metainfoHashSeconds.observe(seconds)
    metrics.metainfoHashedBytes.inc(info.size)
    logger.info({ digest, size: info.size, infoHash: metainfo.infoHash, seconds: Number(seconds.toFixed(3)) }, 'computed metainfo')
    this.keep(metainfo)
    await this.write(metainfo)
    return metainfo
  }

  private keep(metainfo: Metainfo): void {
    this.memory.delete(metainfo.digest)
    this.memory.set(metainfo.digest, metainfo)
    if (this.memory.size > this.memoryEntries) this.memory.delete(this.memory.keys().next().value as Digest)
  }

  /**
   * Saves metainfo for the next start. A failed write (disk full, I/O error) loses only that:
   * the temporary file is removed, the failure logged and counted, the metainfo kept in memory.
   */
  private async write(metainfo: Metainfo): Promise<void> {
    const path = this.pathOf(metainfo.digest)
    const temporary = `${path}.${process.pid}.tmp`
    try {
      await mkdir(join(path, '..'), { recursive: true })
      await writeFile(temporary, metainfo.torrent)
      await rename(temporary, path)
    } catch (err) {
      await rm(temporary, { force: true }).catch(() => {})
      this.components.logger.error({ digest: metainfo.digest, path, err }, 'could not save metainfo to the data dir; kept in memory only')
      this.components.ledger?.record({ type: 'fault', kind: 'io', detail: `metainfo ${metainfo.digest}: ${(err as Error).message}` })
    }
  }

  private pathOf(digest: Digest): string {
    return join(this.init.dataDir, 'metainfo', digestAlgorithm(digest), `${digestHex(digest)}.torrent`)
  }
}
