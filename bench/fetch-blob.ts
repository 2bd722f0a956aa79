/**
 * Runs inside a node's network namespace during the herd benchmark: GETs one blob, hashes it,
 * discards it, and prints {seconds, bytes, digestOk} as JSON. Bounded by --timeout-ms.
 *   node fetch-blob.js <url> <sha256:digest> <timeout-ms>
 */
import { createHash } from 'node:crypto'

const [url, digest, timeout] = process.argv.slice(2)
if (!url || !digest) {
  process.stderr.write('usage: fetch-blob <url> <digest> [timeout-ms]\n')
  process.exit(2)
}
const started = performance.now()
const response = await fetch(url, { signal: AbortSignal.timeout(Number(timeout ?? 900_000)) })
if (!response.ok || !response.body) {
  process.stderr.write(`${url}: HTTP ${response.status}\n`)
  process.exit(1)
}
const hash = createHash('sha256')
let bytes = 0
for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
  hash.update(chunk)
  bytes += chunk.length
}
const seconds = (performance.now() - started) / 1000
process.stdout.write(`${JSON.stringify({ seconds, bytes, digestOk: `sha256:${hash.digest('hex')}` === digest })}\n`)
