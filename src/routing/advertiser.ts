import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { BlobInfo, ContentProvider, ContentWatcher } from '../content/provider.js'
import { takeInventory, type ContentInventory } from '../content/walk.js'
import type { Metrics } from '../observe/metrics.js'
import type { Router } from './router.js'
import { Wakeup } from '../util/wakeup.js'

export const DEFAULT_RESYNC_INTERVAL_MS = 5 * 60_000
export const DEFAULT_DEBOUNCE_MS = 250
const RETRY_MS = 5_000

export interface AdvertiserInit {
  resolveTags: boolean
  /** Full resync even without events: containerd 1.6 sends none when content is written. */
  resyncIntervalMs?: number
  debounceMs?: number
  /** Blobs this large get their metainfo computed ahead of the first peer asking. */
  prefetchMinSize?: number
  /** Images whose name matches one of these are not advertised (--registry-filters). */
  registryFilters?: RegExp[]
}

export interface AdvertiserComponents {
  content: ContentProvider
  watcher: ContentWatcher
  router: Router
  logger: Logger
  metrics: Metrics
  /** Background metainfo hashing for large blobs. */
  prefetch?: (blobs: BlobInfo[]) => void
}

/**
 * Keeps the DHT in step with the content store: on start, on every image event and
 * periodically, it announces every digest present (and every tag with --resolve-tags) and
 * withdraws what is gone. Keys held for downloads in progress are announced too.
 */
export class Advertiser {
  private controller: AbortController | undefined
  private readonly transient = new Set<string>()
  private advertised = new Set<string>()
  private dirty = false
  private readonly changed = new Wakeup()
  private loops: Promise<void>[] = []
  inventory: ContentInventory | undefined
  lastSync: Date | undefined

  constructor(private readonly components: AdvertiserComponents, private readonly init: AdvertiserInit) {}

  start(): void {
    if (this.controller) return
    this.controller = new AbortController()
    const signal = this.controller.signal
    this.loops = [this.watchLoop(signal), this.syncLoop(signal)]
  }

  async stop(): Promise<void> {
    this.controller?.abort()
    this.controller = undefined
    this.changed.notify()
    await Promise.allSettled(this.loops)
    this.loops = []
  }

  hold(key: string): void {
    this.transient.add(key)
    this.components.router.advertise([key])
  }

  release(key: string): void {
    this.transient.delete(key)
    if (!this.advertised.has(key)) this.components.router.withdraw([key])
  }

  private async watchLoop(signal: AbortSignal): Promise<void> {
    try {
      for await (const event of this.components.watcher.watch({ signal })) {
        this.components.logger.debug({ event }, 'content event')
        this.dirty = true
        this.changed.notify()
      }
    } catch (err) {
      if (!signal.aborted) this.components.logger.error({ err }, 'content watcher stopped')
    }
  }

  private async syncLoop(signal: AbortSignal): Promise<void> {
    let nextFull = Date.now()
    while (!signal.aborted) {
      if (this.dirty || Date.now() >= nextFull) {
        this.dirty = false
        await sleep(this.init.debounceMs ?? DEFAULT_DEBOUNCE_MS, undefined, { signal }).catch(() => {})
        if (signal.aborted) return
        try {
          await this.sync(signal)
          nextFull = Date.now() + (this.init.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS)
        } catch (err) {
          if (signal.aborted) return
          this.components.logger.warn({ err, retryInMs: RETRY_MS }, 'could not list content to advertise')
          nextFull = Date.now() + RETRY_MS
        }
      }
      if (!this.dirty) await this.changed.wait({ timeoutMs: nextFull - Date.now(), signal })
    }
  }

  private async sync(signal?: AbortSignal): Promise<void> {
    const { content, router, logger, metrics } = this.components
    const filters = this.init.registryFilters ?? []
    const inventory = await takeInventory(content, { signal, excluded: (name) => filters.some((filter) => filter.test(name)) })
    const keys = new Set<string>(inventory.blobs.keys())
    if (this.init.resolveTags) for (const tag of inventory.tags.keys()) keys.add(tag)
    const added = [...keys].filter((key) => !this.advertised.has(key))
    const removed = [...this.advertised].filter((key) => !keys.has(key) && !this.transient.has(key))
    router.advertise(added)
    router.withdraw(removed)
    this.advertised = keys
    this.inventory = inventory
    this.lastSync = new Date()
    metrics.advertisedImageDigests.set(inventory.blobs.size)
    metrics.advertisedImageTags.set(this.init.resolveTags ? inventory.tags.size : 0)
    metrics.advertisedImages.set(inventory.images)
    for (const problem of inventory.problems) logger.warn(problem, 'image could not be walked completely')
    if (added.length || removed.length) logger.info({ added: added.length, withdrawn: removed.length, total: keys.size }, 'advertised content changed')
    const minSize = this.init.prefetchMinSize
    if (minSize !== undefined && this.components.prefetch) {
      this.components.prefetch([...inventory.blobs.values()].filter((blob) => blob.size >= minSize))
    }
  }
}
