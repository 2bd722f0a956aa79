#!/usr/bin/env node
/**
 * `npm start`: a local shoal a newcomer can watch work, no root and no containerd needed.
 * Builds a sample image into an OCI layout directory, runs `shoal registry` over it on
 * loopback and prints what to try. Ctrl-C stops everything and removes the temp files.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildImage, writeOciLayout } from './sample-image.js'

const SHOAL_MAIN = fileURLToPath(new URL('../main.js', import.meta.url))
const REGISTRY_PORT = Number(process.env['DEMO_REGISTRY_PORT'] ?? 5050)
const METRICS_PORT = Number(process.env['DEMO_METRICS_PORT'] ?? 9095)
const SAMPLE_LAYER_BYTES = 64 * 1024 * 1024

const dir = await mkdtemp(join(tmpdir(), 'shoal-demo-'))
const image = buildImage({ registry: 'demo.local', repository: 'sample/app', tag: 'v1', layerSizes: [SAMPLE_LAYER_BYTES, 4096] })
await writeOciLayout(join(dir, 'node-1'), [image])

const node = spawn(process.execPath, [SHOAL_MAIN, 'registry', '--content-dir', join(dir, 'node-1'), '--data-dir', join(dir, 'data-1'),
  '--registry-addr', `127.0.0.1:${REGISTRY_PORT}`, '--metrics-addr', `127.0.0.1:${METRICS_PORT}`, '--log-level', 'info'], { stdio: ['ignore', 'inherit', 'inherit'] })

const base = `http://127.0.0.1:${REGISTRY_PORT}`
process.stdout.write(`
shoal demo: one node serving ${image.name} from ${join(dir, 'node-1')}
  registry API  ${base}/v2/
  metrics       http://127.0.0.1:${METRICS_PORT}/metrics
try:
  curl -sI '${base}/v2/sample/app/manifests/v1?ns=demo.local'
  curl -s -o /dev/null -w '%{size_download} bytes in %{time_total}s\\n' '${base}/v2/sample/app/blobs/${image.layers[0]!.digest}'
  curl -s -H 'Range: bytes=0-15' '${base}/v2/sample/app/blobs/${image.layers[0]!.digest}' | od -A d -t x1
Ctrl-C stops it.

`)

const stop = (): void => {
  node.kill('SIGTERM')
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
const [code] = await once(node, 'exit')
await rm(dir, { recursive: true, force: true })
process.exitCode = typeof code === 'number' ? code : 0
