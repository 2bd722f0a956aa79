import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sha256Digest, type Digest } from '../oci/digest.js'
import { OCI_INDEX, OCI_MANIFEST } from '../oci/mediatype.js'
import { blobPath } from '../content/blob-file.js'
import { CONTAINERD_IMAGE_NAME } from '../content/oci-layout.js'
import { tarArchive } from './tar.js'

export const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar'
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'

export interface TestBlob {
  digest: Digest
  bytes: Buffer
  mediaType: string
}

export interface TestImage {
  /** Fully qualified name with tag, e.g. `127.0.0.1:5000/test:v1`. */
  name: string
  repository: string
  tag: string
  manifest: TestBlob
  config: TestBlob
  layers: TestBlob[]
  /** Set when the image is an index over `manifest`. */
  index?: TestBlob
  /** A second platform's manifest in the index, and its config and layer (in `blobs` too). */
  otherPlatform?: { manifest: TestBlob; blobs: TestBlob[] }
  /** What the tag points at: the index if there is one, else the manifest. */
  target: TestBlob
  blobs: TestBlob[]
}

export function blob(bytes: Buffer, mediaType: string): TestBlob {
  return { digest: sha256Digest(bytes), bytes, mediaType }
}

/** Deterministic filler: byte i is (7*i + 3) mod 256, the pattern of the check value in docs/design.md. */
export function patternBytes(size: number, multiplier = 7, offset = 3): Buffer {
  const bytes = Buffer.alloc(size)
  for (let i = 0; i < size; i++) bytes[i] = (multiplier * i + offset) & 0xff
  return bytes
}

export interface ImageSpec {
  registry: string
  repository: string
  tag: string
  /** Sizes of the random files, one layer each. */
  layerSizes: number[]
  /** Write manifests without a `mediaType` field (allowed by OCI; shoal must detect it). */
  omitMediaType?: boolean
  /** Wrap the manifest in a one-platform OCI index. */
  withIndex?: boolean
  /** With `withIndex`: the index also lists a manifest for linux on this architecture (one small layer). */
  otherPlatform?: string
}

export function buildImage(spec: ImageSpec): TestImage {
  const layers = spec.layerSizes.map((size, i) => blob(tarArchive([{ name: `data/layer-${i}.bin`, data: randomBytes(size) }]), OCI_LAYER_TAR))
  const { manifest, config } = platformManifest(spec, 'amd64', layers)
  const other = spec.withIndex && spec.otherPlatform ? otherPlatform(spec, spec.otherPlatform) : undefined
  const index = spec.withIndex ? blob(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    ...(spec.omitMediaType ? {} : { mediaType: OCI_INDEX }),
    manifests: [
      { ...descriptor(manifest), platform: { architecture: 'amd64', os: 'linux' } },
      ...(other ? [{ ...descriptor(other.manifest), platform: { architecture: spec.otherPlatform, os: 'linux' } }] : []),
    ],
  })), OCI_INDEX) : undefined
  const target = index ?? manifest
  return {
    name: `${spec.registry}/${spec.repository}:${spec.tag}`,
    repository: spec.repository,
    tag: spec.tag,
    manifest, config, layers, target,
    ...(index ? { index } : {}),
    ...(other ? { otherPlatform: other } : {}),
    blobs: [...(index ? [index] : []), manifest, config, ...layers, ...(other?.blobs ?? [])],
  }
}

function platformManifest(spec: ImageSpec, architecture: string, layers: TestBlob[]): { manifest: TestBlob; config: TestBlob } {
  const config = blob(Buffer.from(JSON.stringify({
    architecture,
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
  })), OCI_CONFIG)
  const manifestJson: Record<string, unknown> = {
    schemaVersion: 2,
    ...(spec.omitMediaType ? {} : { mediaType: OCI_MANIFEST }),
    config: descriptor(config),
    layers: layers.map(descriptor),
  }
  return { manifest: blob(Buffer.from(JSON.stringify(manifestJson)), OCI_MANIFEST), config }
}

function otherPlatform(spec: ImageSpec, architecture: string): { manifest: TestBlob; blobs: TestBlob[] } {
  const layer = blob(tarArchive([{ name: `data/${architecture}.bin`, data: randomBytes(4096) }]), OCI_LAYER_TAR)
  const { manifest, config } = platformManifest(spec, architecture, [layer])
  return { manifest, blobs: [manifest, config, layer] }
}

export function descriptor(item: TestBlob): { mediaType: string; digest: string; size: number } {
  return { mediaType: item.mediaType, digest: item.digest, size: item.bytes.length }
}

/** Writes images into an OCI layout directory that OciLayoutContentProvider serves. */
export async function writeOciLayout(root: string, images: TestImage[]): Promise<void> {
  await mkdir(root, { recursive: true })
  await writeFile(join(root, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  for (const image of images) {
    for (const item of image.blobs) {
      const path = blobPath(root, item.digest)
      await mkdir(join(path, '..'), { recursive: true })
      await writeFile(path, item.bytes)
    }
  }
  const manifests = images.map((image) => ({ ...descriptor(image.target), annotations: { [CONTAINERD_IMAGE_NAME]: image.name } }))
  await writeFile(join(root, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }))
}
