import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { sha256Digest, type Digest } from '../../src/oci/digest.js'
import { rankFetchers } from '../../src/upstream/fetcher-choice.js'
import { FirstPulls } from '../../src/upstream/first-pulls.js'
import type { FirstPullRequest, PullSource } from '../../src/upstream/pull-source.js'
import { relaySources } from '../../src/upstream/relay-tree.js'
import { UpstreamRefusedError } from '../../src/upstream/tokens.js'
import { UpstreamUnavailableError } from '../../src/upstream/upstream-source.js'
import { ManualClock } from '../support/clock.js'
import { eventually } from '../support/eventually.js'
import { patternBytes } from '../support/images.js'
import { silentLogger } from '../support/registry-app.js'

const bytes = patternBytes(2 * 2 ** 20 + 5, 3, 8)
const digest = sha256Digest(bytes)
const request: FirstPullRequest = { registry: 'registry.test', repository: 'team/app', digest, kind: 'blobs' }

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const chunk of stream) parts.push(chunk as Buffer)
  return Buffer.concat(parts)
}

/** A body that sends `bytes`, then nothing, and stays open until it is destroyed. */
function stalledBody(bytes: Buffer): PassThrough {
  const body = new PassThrough()
  body.write(bytes)
  return body
}

interface Behaviour {
  /** Send bytes up to here, then cut the connection. */
  cutAt?: number
  /** Send bytes up to here, then nothing more (the connection stays open). */
  stallAt?: number
  /** Flip this byte. */
  corruptAt?: number
  refuse?: boolean
  /** Never answer. */
  silent?: boolean
  fail?: boolean
}

/** A source in memory that behaves as told, recording where it was asked from. */
function source(name: string, kind: PullSource['kind'], behaviour: Behaviour = {}): PullSource & { asked: number[] } {
  const asked: number[] = []
  return {
    name, kind, asked,
    open: (from, signal) => {
      asked.push(from)
      if (behaviour.refuse) return Promise.reject(new UpstreamRefusedError(401, `${name} refuses`))
      if (behaviour.fail) return Promise.reject(new Error(`${name} fails`))
      if (behaviour.silent) return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))
      const content = Buffer.from(bytes)
      if (behaviour.corruptAt !== undefined) content[behaviour.corruptAt] ^= 0xff
      const end = behaviour.cutAt ?? behaviour.stallAt ?? content.length
      // A body that stalls stays open, as a frozen peer's connection does.
      const body = behaviour.stallAt === undefined ? Readable.from((async function* () {
        for (let at = from; at < end; at += 256 * 1024) yield content.subarray(at, Math.min(end, at + 256 * 1024))
        if (behaviour.cutAt !== undefined) throw new Error(`${name} cut the connection`)
      })()) : stalledBody(content.subarray(from, end))
      return Promise.resolve({ size: bytes.length, body, server: name })
    },
  }
}

describe('a first pull read from the relay tree and upstream', () => {
  let dir: string
  let count = 0
  const pulls: FirstPulls[] = []
  const convicted: string[] = []
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'shoal-first-pull-')) })
  after(async () => {
    for (const pull of pulls) await pull.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const firstPulls = (sources: PullSource[], clock = new ManualClock()): FirstPulls => {
    const made = new FirstPulls({ logger: silentLogger, clock, sources: () => sources, convict: (source, _digest, why) => convicted.push(`${source.name}: ${why}`) },
      { dataDir: join(dir, `node-${++count}`), stallMs: 10_000, lingerMs: 60_000 })
    pulls.push(made)
    return made
  }

  it('reads from the first source that answers and continues a cut body from the next one at the byte it reached', async () => {
    const parent = source('parent', 'peer', { fail: true })
    const grandparent = source('grandparent', 'peer', { cutAt: 1_000_000 })
    const upstream = source('upstream', 'upstream')
    const pull = await firstPulls([parent, grandparent, upstream]).open(request)
    const early = readAll(pull.follow(undefined, 'containerd'))
    assert.ok((await early).equals(bytes))
    assert.ok((await readAll(pull.follow(undefined, 'late'))).equals(bytes), 'a late reader gets the whole blob from the start')
    assert.deepEqual([parent.asked, grandparent.asked, upstream.asked], [[0], [0], [1_000_000]])
    assert.deepEqual([...pull.received].map(([name, entry]) => [name, entry.bytes]), [['grandparent', 1_000_000], ['upstream', bytes.length - 1_000_000]])
  })

  it('leaves a source that stops sending exactly at the stall timeout, on the clock', async () => {
    const clock = new ManualClock()
    const frozen = source('frozen', 'peer', { stallAt: 500_000 })
    const upstream = source('upstream', 'upstream')
    const pull = await firstPulls([frozen, upstream], clock).open(request)
    const reading = readAll(pull.follow(undefined, 'containerd'))
    await eventually('the frozen source\'s bytes written', () => pull.blob.written === 500_000, 2_000, 5)
    clock.advance(9_999)
    await new Promise((resolve) => setTimeout(resolve, 20))
    assert.deepEqual(upstream.asked, [], 'upstream asked before the stall timeout')
    clock.advance(1)
    await eventually('upstream asked from the byte the frozen source reached', () => upstream.asked[0] === 500_000, 2_000, 5)
    assert.ok((await reading).equals(bytes))
  })

  it('stops at once when upstream refuses an anonymous pull: no later source is asked, nothing is kept', async () => {
    const refusing = source('parent', 'peer', { refuse: true })
    const upstream = source('upstream', 'upstream')
    const node = firstPulls([refusing, upstream])
    await assert.rejects(node.open(request), UpstreamRefusedError)
    assert.deepEqual(upstream.asked, [])
    assert.equal(node.list().length, 0)
  })

  it('cuts every reader and convicts the relay when the bytes do not hash to the digest; the file is removed', async () => {
    const liar = source('liar', 'peer', { corruptAt: 12345 })
    const node = firstPulls([liar, source('upstream', 'upstream')])
    const pull = await node.open(request)
    const reading = readAll(pull.follow(undefined, 'containerd'))
    await assert.rejects(reading)
    await eventually('the liar convicted', () => convicted.some((line) => line.startsWith('liar: ')), 2_000, 5)
    await eventually('the file removed', async () => (await readdir(join(dir, `node-${count}`, 'first-pulls'))).length === 0, 2_000, 5)
    assert.equal(node.verified(digest), undefined)
  })

  it('says at once when the pull cannot be kept on disk, and closes the answer it got', async () => {
    const body = new PassThrough()
    const upstream: PullSource = { name: 'upstream', kind: 'upstream', open: () => Promise.resolve({ size: bytes.length, body, server: 'upstream' }) }
    const file = join(dir, 'a-file')
    await writeFile(file, 'not a directory')
    const node = new FirstPulls({ logger: silentLogger, clock: new ManualClock(), sources: () => [upstream] }, { dataDir: join(file, 'data'), stallMs: 10_000 })
    pulls.push(node)
    await assert.rejects(node.open(request), (err: Error) => err instanceof UpstreamUnavailableError && /cannot keep a first pull/.test(err.message))
    assert.ok(body.destroyed, 'the answer was left open')
  })

  it('serves a range past what has arrived once its bytes arrive, holding the last byte until the whole is verified', async () => {
    const body = new PassThrough()
    const slow: PullSource = { name: 'upstream', kind: 'upstream', open: () => Promise.resolve({ size: bytes.length, body, server: 'upstream' }) }
    const pull = await firstPulls([slow]).open(request)
    const range = { start: 2_000_000, end: bytes.length - 1 }
    const chunks: Buffer[] = []
    const follower = pull.follow(range, 'containerd')
    follower.on('data', (chunk: Buffer) => chunks.push(chunk))
    body.write(bytes.subarray(0, 1_000_000))
    await new Promise((resolve) => setTimeout(resolve, 30))
    assert.equal(chunks.length, 0, 'bytes before the range sent')
    body.write(bytes.subarray(1_000_000, bytes.length - 1))
    await eventually('the range but its last byte', () => Buffer.concat(chunks).length === range.end - range.start, 2_000, 5)
    body.end(bytes.subarray(bytes.length - 1))
    await eventually('the whole range', () => Buffer.concat(chunks).length === range.end - range.start + 1, 2_000, 5)
    assert.ok(Buffer.concat(chunks).equals(bytes.subarray(range.start)))
    assert.ok(pull.blob.verified)
    assert.ok(existsSync(join(dir, `node-${count}`, 'first-pulls')))
  })
})

describe('the relay tree of a first pull', () => {
  const nodes = Array.from({ length: 40 }, (_, index) => `10.0.0.${index + 1}:5000`)
  const digests = Array.from({ length: 20 }, (_, index) => sha256Digest(`blob ${index}`)) as Digest[]

  it('has the fetcher at its root, each parent ranking above its child, and at most two children a node', () => {
    for (const blob of digests) {
      const ranked = rankFetchers(blob, nodes)
      assert.deepEqual(relaySources(blob, ranked[0]!, nodes), [], 'the first-ranked node fetches from upstream')
      const children = new Map<string, number>()
      for (const node of nodes) {
        const chain = relaySources(blob, node, nodes.filter((other) => other !== node))
        assert.equal(chain.at(-1) ?? node, ranked[0], 'every chain ends at the fetcher')
        for (const [index, parent] of chain.entries()) assert.ok(ranked.indexOf(parent) < ranked.indexOf(index === 0 ? node : chain[index - 1]!), 'a parent ranks above its child')
        if (chain[0]) children.set(chain[0], (children.get(chain[0]) ?? 0) + 1)
        assert.ok(chain.length <= Math.ceil(Math.log2(nodes.length + 1)), `depth ${chain.length}`)
      }
      assert.ok([...children.values()].every((count) => count <= 2), 'a node relays to at most two children')
    }
  })

  it('never sends two nodes whose views differ to each other (no node waits on itself)', () => {
    for (const blob of digests) {
      for (const [index, node] of nodes.entries()) {
        // Each node sees a different half of the others.
        const view = nodes.filter((other, at) => other !== node && (at + index) % 2 === 0)
        for (const parent of relaySources(blob, node, view)) assert.ok(rankFetchers(blob, [node, parent])[0] === parent)
      }
    }
  })
})
