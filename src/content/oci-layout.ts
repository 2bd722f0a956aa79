import type { OpenOptions } from './provider.js'
import type { SignalOptions } from '../util/abort.js'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Readable } from 'node:stream'
import { isDigest, type Digest } from '../oci/digest.js'
import { parseImageName } from '../oci/reference.js'
import { openBlobFile, statBlobFile } from './blob-file.js'
import type { BlobInfo, ContentEvent, ContentProvider, ContentWatcher, ImageRecord } from './provider.js'

export const CONTAINERD_IMAGE_NAME = 'io.containerd.image.name'
export const OCI_REF_NAME = 'org.opencontainers.image.ref.name'
export const DEFAULT_LAYOUT_POLL_MS = 1000
const MAX_INDEX_JSON = 16 * 1024 * 1024

export interface OciLayoutInit {
  /** How often index.json is checked for changes. */
  pollIntervalMs?: number
}

/**
 * Content from an OCI image layout directory (`index.json` + `blobs/sha256/…`): the same
 * on-disk blob layout as containerd's content store. Image names come from the
 * `io.containerd.image.name` annotation, or a fully qualified `org.opencontainers.image.ref.name`.
 * Used by the demo and by swarm tests that need many nodes without root.
 */
export class OciLayoutContentProvider implements ContentProvider, ContentWatcher {
  private readonly pollIntervalMs: number

  constructor(readonly root: string, init: OciLayoutInit = {}) {
    this.pollIntervalMs = init.pollIntervalMs ?? DEFAULT_LAYOUT_POLL_MS
  }

  async listImages(): Promise<ImageRecord[]> {
    let raw: string
    try {
      const indexPath = join(this.root, 'index.json')
      if ((await stat(indexPath)).size > MAX_INDEX_JSON) return []
      raw = await readFile(indexPath, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    return parseLayoutIndex(raw)
  }

  async resolve(name: string): Promise<Digest | undefined> {
    return (await this.listImages()).find((image) => image.name === name)?.target.digest
  }

  stat(digest: Digest): Promise<BlobInfo | undefined> {
    return statBlobFile(this.root, digest)
  }

  open(digest: Digest, options: OpenOptions = {}): Promise<Readable> {
    return openBlobFile(this.root, digest, options)
  }

  async *watch(options: SignalOptions = {}): AsyncIterable<ContentEvent> {
    const signal = options.signal ?? new AbortController().signal
    let last = await this.indexVersion()
    yield { type: 'resync' }
    while (!signal.aborted) {
      try {
        await sleep(this.pollIntervalMs, undefined, { signal })
      } catch {
        return
      }
      const version = await this.indexVersion()
      if (version !== last) {
        last = version
        yield { type: 'resync' }
      }
    }
  }

  private async indexVersion(): Promise<string> {
    try {
      const info = await stat(join(this.root, 'index.json'))
      return `${info.mtimeMs}:${info.size}`
    } catch {
      return 'absent'
    }
  }
}

function parseLayoutIndex(raw: string): ImageRecord[] {
  let index: unknown
  try {
    index = JSON.parse(raw)
  } catch {
    return []
  }
  const manifests = (index as { manifests?: unknown })?.manifests
  if (!Array.isArray(manifests)) return []
  const images: ImageRecord[] = []
  for (const entry of manifests as Record<string, unknown>[]) {
    const annotations = (entry?.['annotations'] ?? {}) as Record<string, unknown>
    const name = [annotations[CONTAINERD_IMAGE_NAME], annotations[OCI_REF_NAME]]
      .find((candidate): candidate is string => typeof candidate === 'string' && parseImageName(candidate) !== undefined)
    const digest = entry?.['digest']
    const size = entry?.['size']
    if (!name || typeof digest !== 'string' || !isDigest(digest) || typeof size !== 'number') continue
    images.push({ name, target: { digest, size, mediaType: String(entry['mediaType'] ?? '') } })
  }
  return images
}
