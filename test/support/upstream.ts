import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { TestBlob, TestImage } from './images.js'
import { requireCommand, startProcess, type Managed } from './processes.js'
import { eventually } from './eventually.js'

export interface UpstreamRegistry {
  /** `host:port`, as it appears in image names. */
  host: string
  url: string
  process: Managed
  stop(): Promise<void>
}

/** CNCF distribution (Debian's docker-registry) with filesystem storage under `dir`. */
export async function startUpstreamRegistry(dir: string, address: { host: string; port: number }, init: { netns?: string; accessLog?: boolean; extraConfig?: string[] } = {}): Promise<UpstreamRegistry> {
  await mkdir(join(dir, 'data'), { recursive: true })
  const configFile = join(dir, 'config.yml')
  await writeFile(configFile, [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    `    disabled: ${!init.accessLog}`,
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${address.host}:${address.port}`,
    ...(init.extraConfig ?? []),
    '',
  ].join('\n'))
  await requireCommand('docker-registry')
  const [command, args] = init.netns
    ? ['ip', ['netns', 'exec', init.netns, 'docker-registry', 'serve', configFile]]
    : ['docker-registry', ['serve', configFile]]
  const process = startProcess('docker-registry', command, args, join(dir, 'registry.log'))
  const host = `${address.host}:${address.port}`
  const url = `http://${host}`
  const upstream = { host, url, process, stop: () => process.stop() }
  if (!init.netns) await eventually(`docker-registry on ${host}`, async () => [200, 401].includes((await fetch(`${url}/v2/`)).status), 15_000)
  return upstream
}

type Fetch = (url: string | URL, init?: { method?: string; body?: Buffer; headers?: Record<string, string> }) => Promise<Response>

/** Pushes every blob and manifest of the image, then tags it. */
export async function pushImage(url: string, image: TestImage, fetch: Fetch = globalThis.fetch): Promise<void> {
  const manifests = new Set([image.manifest.digest, image.index?.digest, image.otherPlatform?.manifest.digest])
  for (const item of image.blobs.filter((entry) => !manifests.has(entry.digest))) await pushBlob(url, image.repository, item, fetch)
  await putManifest(url, image.repository, image.manifest.digest, image.manifest, fetch)
  if (image.otherPlatform) await putManifest(url, image.repository, image.otherPlatform.manifest.digest, image.otherPlatform.manifest, fetch)
  if (image.index) await putManifest(url, image.repository, image.index.digest, image.index, fetch)
  await putManifest(url, image.repository, image.tag, image.target, fetch)
}

async function pushBlob(url: string, repository: string, item: TestBlob, fetch: Fetch): Promise<void> {
  const head = await fetch(`${url}/v2/${repository}/blobs/${item.digest}`, { method: 'HEAD' })
  if (head.status === 200) return
  const start = await fetch(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST' })
  if (start.status !== 202) throw new Error(`upload start: ${start.status} ${await start.text()}`)
  const location = new URL(start.headers.get('location') ?? '', url)
  location.searchParams.set('digest', item.digest)
  const put = await fetch(location, { method: 'PUT', body: item.bytes, headers: { 'content-type': 'application/octet-stream' } })
  if (put.status !== 201) throw new Error(`upload ${item.digest}: ${put.status} ${await put.text()}`)
}

async function putManifest(url: string, repository: string, reference: string, item: TestBlob, fetch: Fetch): Promise<void> {
  const response = await fetch(`${url}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT', body: item.bytes, headers: { 'content-type': item.mediaType },
  })
  if (response.status !== 201) throw new Error(`manifest ${reference}: ${response.status} ${await response.text()}`)
}
