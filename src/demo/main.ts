#!/usr/bin/env node
/**
 * `npm start`: a small swarm a newcomer can watch work, no root and no containerd needed.
 * Four `shoal registry` processes on loopback over OCI layout directories; nodes 1 and 2 hold
 * a sample image, nodes 3 and 4 pull it at the same time through their mirror endpoints.
 * The debug pages stay up until Ctrl-C, which stops every node and removes the temp files.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildImage, writeOciLayout } from './sample-image.js'
import { DemoNode, measureThrough, waitUntil } from './nodes.js'

const HOST = process.env['DEMO_HOST'] ?? '127.0.0.1'
const BASE_PORT = Number(process.env['DEMO_BASE_PORT'] ?? 17100)
const NODES = 4
const HOLDERS = 2
const LAYER_BYTES = Number(process.env['DEMO_LAYER_MIB'] ?? 256) * 1024 * 1024
/** Holders upload slowly enough that the transfer can be watched on the debug page. */
const HOLDER_UPLOAD_LIMIT = process.env['DEMO_UPLOAD_LIMIT'] ?? '16MiB'
const READY_TIMEOUT_MS = 30_000

const dir = await mkdtemp(join(tmpdir(), 'shoal-demo-'))
const nodes: DemoNode[] = []
let stopping = false
const stop = async (): Promise<void> => {
  if (stopping) return
  stopping = true
  process.stdout.write('\nstopping the demo nodes…\n')
  await Promise.all(nodes.map((node) => node.stop()))
  await rm(dir, { recursive: true, force: true })
}
process.once('SIGINT', () => void stop())
process.once('SIGTERM', () => void stop())

try {
  process.stdout.write(`building a sample image with a ${LAYER_BYTES / 1024 / 1024} MiB layer in ${dir}\n`)
  const image = buildImage({ registry: 'demo.local', repository: 'sample/app', tag: 'v1', layerSizes: [LAYER_BYTES, 4096] })
  for (let index = 0; index < NODES; index++) {
    const node = new DemoNode({ dir, index, host: HOST, basePort: BASE_PORT })
    await writeOciLayout(node.layoutDir, index < HOLDERS ? [image] : [])
    nodes.push(node)
  }
  const bootstrap = nodes.map((node) => node.p2p)
  // The demo's cluster key, as the chart makes one: a random line in a file only its nodes read.
  const keyFile = join(dir, 'cluster.key')
  await writeFile(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 })
  for (const [index, node] of nodes.entries()) {
    node.start(bootstrap.filter((peer) => peer !== node.p2p), ['--cluster-key-file', keyFile, ...(index < HOLDERS ? ['--upload-limit', HOLDER_UPLOAD_LIMIT] : [])])
  }
  await Promise.all(nodes.map((node) => node.waitReady(READY_TIMEOUT_MS)))
  const requesters = nodes.slice(HOLDERS)
  await waitUntil('the holders to advertise the image', READY_TIMEOUT_MS, async () =>
    (await Promise.all(requesters.map((node) => node.holds(image)))).every(Boolean))

  process.stdout.write(`
shoal demo: ${NODES} nodes on ${HOST}; nodes 1-${HOLDERS} hold ${image.name} (upload capped at ${HOLDER_UPLOAD_LIMIT}/s each)
${nodes.map((node) => `  node ${node.index + 1}: registry ${node.registryUrl}  debug page ${node.metricsUrl}/debug`).join('\n')}
  node logs: ${dir}/node-N/shoal.log

nodes ${HOLDERS + 1}-${NODES} now pull ${image.name} at once through their mirror endpoints (watch ${requesters[0]!.metricsUrl}/debug)…
`)
  const results = await Promise.all(requesters.map((node) => measureThrough(node, image.name)))
  for (const [i, result] of results.entries()) {
    process.stdout.write(`  node ${requesters[i]!.index + 1}: ${result}\n`)
  }
  process.stdout.write(`
try:
  open ${requesters[0]!.metricsUrl}/debug          (piece map coloured by the peer that sent each piece; "measure" pulls again)
  node dist/src/main.js status --addr ${requesters[0]!.metricsAddr}
  curl -s ${requesters[0]!.metricsUrl}/metrics | grep ^shoal_swarm
  curl -sI '${requesters[1]!.registryUrl}/v2/sample/app/manifests/v1?ns=demo.local'
Ctrl-C stops it.
`)
  await Promise.race(nodes.map((node) => node.exited))
  if (!stopping) process.stdout.write('a demo node exited; see its log above\n')
} catch (err) {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`)
  process.exitCode = 1
} finally {
  await stop()
}
