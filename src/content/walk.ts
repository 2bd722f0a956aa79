import { isDigest, type Digest } from '../oci/digest.js'
import { MAX_MANIFEST_SIZE, parseManifest } from '../oci/mediatype.js'
import { parseImageName, tagReference } from '../oci/reference.js'
import type { BlobInfo, ContentProvider, ImageRecord } from './provider.js'
import { readSmallBlob } from './read.js'

/** Everything a node can serve: present blobs reachable from its images, and its tags. */
export interface ContentInventory {
  blobs: Map<Digest, BlobInfo>
  /** `registry/repository:tag` → manifest digest. */
  tags: Map<string, Digest>
  /** Image records walked (CRI keeps several per pulled image: tag, repo@digest, config id). */
  images: number
  /** Images whose walk failed (unreadable manifest); their present blobs are still listed. */
  problems: { image: string; reason: string }[]
}

const MAX_INDEX_DEPTH = 4

/** Walks every image index → manifest → config/layers and keeps the digests present locally; `excluded` images are skipped. */
export async function takeInventory(provider: ContentProvider, options: { signal?: AbortSignal; excluded?: (name: string) => boolean } = {}): Promise<ContentInventory> {
  const { signal, excluded = () => false } = options
  const inventory: ContentInventory = { blobs: new Map(), tags: new Map(), images: 0, problems: [] }
  const visited = new Set<string>()
  for (const image of await provider.listImages({ signal })) {
    signal?.throwIfAborted()
    if (excluded(image.name)) continue
    inventory.images++
    try {
      if (await walkDescriptor(provider, image.target.digest, inventory, visited, 0, signal)) recordTag(image, inventory)
    } catch (err) {
      if (signal?.aborted) throw err
      inventory.problems.push({ image: image.name, reason: (err as Error).message })
    }
  }
  return inventory
}

function recordTag(image: ImageRecord, inventory: ContentInventory): void {
  const reference = parseImageName(image.name)
  if (reference?.tag === undefined) return
  inventory.tags.set(tagReference(reference.registry, reference.repository, reference.tag), image.target.digest)
}

/** Returns whether the descriptor's blob is present. */
async function walkDescriptor(provider: ContentProvider, digest: Digest, inventory: ContentInventory,
  visited: Set<string>, depth: number, signal?: AbortSignal): Promise<boolean> {
  if (inventory.blobs.has(digest)) return true
  if (visited.has(digest)) return false
  visited.add(digest)
  const info = await provider.stat(digest, { signal })
  if (!info) return false
  inventory.blobs.set(digest, info)
  if (depth > MAX_INDEX_DEPTH) return true
  const bytes = await readSmallBlob(provider, digest, MAX_MANIFEST_SIZE, { signal })
  const manifest = bytes && parseManifest(bytes)
  if (!manifest) return true
  for (const child of manifest.manifests) {
    if (isDigest(child.digest)) await walkDescriptor(provider, child.digest, inventory, visited, depth + 1, signal)
  }
  for (const child of manifest.blobs) {
    if (!isDigest(child.digest)) continue
    const blob = await provider.stat(child.digest, { signal })
    if (blob) inventory.blobs.set(child.digest, blob)
  }
  return true
}
