export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
export const DOCKER_MANIFEST_V1 = 'application/vnd.docker.distribution.manifest.v1+json'
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json'
export const OCTET_STREAM = 'application/octet-stream'

export const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([OCI_INDEX, DOCKER_MANIFEST_LIST])
export const MANIFEST_MEDIA_TYPES: ReadonlySet<string> = new Set([
  OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, DOCKER_MANIFEST_V1,
])

/** Manifests larger than this are refused, as distribution does. */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024

export interface ManifestDescriptorRef {
  mediaType?: string
  digest: string
  size: number
}

/** What shoal needs from a parsed manifest or index. */
export interface ParsedManifest {
  mediaType: string
  /** Child manifests of an index. */
  manifests: ManifestDescriptorRef[]
  /** Config and layers of an image manifest. */
  blobs: ManifestDescriptorRef[]
}

/**
 * Detects the media type of manifest JSON, including manifests written without a
 * `mediaType` field (allowed by the OCI spec). Returns undefined if it is not a manifest.
 */
export function parseManifest(bytes: Uint8Array): ParsedManifest | undefined {
  if (bytes.length === 0 || bytes.length > MAX_MANIFEST_SIZE) return undefined
  let json: unknown
  try {
    json = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    return undefined
  }
  if (!isRecord(json)) return undefined
  const mediaType = detectMediaType(json)
  if (mediaType === undefined) return undefined
  const manifests = descriptors(json['manifests'])
  const blobs = [...descriptors(json['config'] === undefined ? [] : [json['config']]), ...descriptors(json['layers'])]
  return { mediaType, manifests, blobs }
}

function detectMediaType(json: Record<string, unknown>): string | undefined {
  const declared = json['mediaType']
  if (typeof declared === 'string' && MANIFEST_MEDIA_TYPES.has(declared)) return declared
  if (declared !== undefined) return undefined
  if (json['schemaVersion'] === 1 && Array.isArray(json['fsLayers'])) return DOCKER_MANIFEST_V1
  if (json['schemaVersion'] !== 2) return undefined
  if (Array.isArray(json['manifests'])) return OCI_INDEX
  if (isRecord(json['config']) && Array.isArray(json['layers'])) {
    return json['config']['mediaType'] === DOCKER_CONFIG ? DOCKER_MANIFEST : OCI_MANIFEST
  }
  return undefined
}

function descriptors(value: unknown): ManifestDescriptorRef[] {
  if (!Array.isArray(value)) return []
  const out: ManifestDescriptorRef[] = []
  for (const item of value) {
    if (!isRecord(item) || typeof item['digest'] !== 'string' || typeof item['size'] !== 'number') continue
    const ref: ManifestDescriptorRef = { digest: item['digest'], size: item['size'] }
    if (typeof item['mediaType'] === 'string') ref.mediaType = item['mediaType']
    out.push(ref)
  }
  return out
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
