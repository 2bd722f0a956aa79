import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { tagReference } from '../../src/oci/reference.js'
import { METAINFO_PATH } from '../../src/protocol/peer-api.js'
import { computeMetainfo } from '../../src/swarm/metainfo.js'
import { encodePeerId } from '../../src/swarm/peer-id.js'
import { startLoopbackCluster, stats, stopCluster, type LoopbackNode } from './cluster.js'
import { eventually } from './eventually.js'
import { freeze, MiB, rssMiB, sha256, thaw } from './faults.js'
import { buildImage, type TestBlob } from './images.js'
import { removeTestDir } from './processes.js'
import { forgeMetainfo, pullOutcome, Rogue } from './rogue.js'

const bytesOf = async function* (bytes: Buffer): AsyncGenerator<Buffer> { yield bytes }

/**
 * The attacks of issue 13, by a rogue without the cluster key on the same loopback, against
 * three real nodes: H holds an image, V and T pull it through their mirrors. `mode` is whether
 * the nodes have a cluster key; in an open swarm some attacks still work (docs/security.md).
 */
export function attackSuite(mode: 'cluster-key' | 'open', base: number): void {
  const keyed = mode === 'cluster-key'
  describe(`attacks by a process without the key (${mode})`, () => {
    let dir: string
    let nodes: LoopbackNode[]
    let rogue: Rogue
    const honest = buildImage({ registry: 'registry.test', repository: 'attack/honest', tag: 'v1', layerSizes: [40 * MiB, 2 * MiB] })
    const foreign = buildImage({ registry: 'registry.test', repository: 'attack/foreign', tag: 'v1', layerSizes: [1 * MiB] })
    const [big, small] = honest.layers as [TestBlob, TestBlob]
    const forgedLength = { value: big.bytes.length }
    const forgedInfoHash = { value: '' }
    /** Whether `node` convicted the rogue of lying about a blob (a `peer-lied` fault naming it). */
    const convicted = async (node: LoopbackNode): Promise<boolean> =>
      (await stats(node)).faults.recent.some((fault) => fault.kind === 'peer-lied' && fault.detail.startsWith(`${rogue.host}:`))
    const manifestPath = (image: typeof honest): string => `/v2/${image.repository}/manifests/${image.tag}`

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `shoal-attacks-${mode}-`))
      nodes = await startLoopbackCluster({ dir, base, contents: [[honest], [], []], ...(keyed ? {} : { clusterKey: () => null }) })
      rogue = new Rogue(`127.0.0.${base + 9}`)
      await rogue.start(nodes[0]!)
      // Its own manifest for any tag, metainfo of random bytes (of the asked length) for the big layer, wrong bytes for the small one.
      const forgedBytes = (length: number): Buffer => Buffer.alloc(length, 0x5a)
      const forged = new Map<number, { torrent: Buffer; port: number }>()
      for (const length of [big.bytes.length, big.bytes.length + 4 * MiB]) {
        const metainfo = forgeMetainfo(big.digest, forgedBytes(length))
        if (length === big.bytes.length) forgedInfoHash.value = metainfo.infoHash
        forged.set(length, { torrent: metainfo.torrent, port: await rogue.seed(metainfo, forgedBytes(length)) })
      }
      rogue.route('/v2/', (request, response) => {
        const url = request.url ?? ''
        if (url.includes('/manifests/')) {
          response.writeHead(200, { 'content-type': foreign.target.mediaType, 'docker-content-digest': foreign.target.digest, 'content-length': String(foreign.target.bytes.length) })
          response.end(request.method === 'HEAD' ? undefined : foreign.target.bytes)
        } else if (url.includes(`/blobs/${small.digest}`)) {
          response.writeHead(200, { 'content-length': String(small.bytes.length) })
          response.end(request.method === 'HEAD' ? undefined : forgedBytes(small.bytes.length))
        } else if (url.includes(`/blobs/${big.digest}`)) {
          response.writeHead(200, { 'content-length': String(big.bytes.length) })
          response.end()
        } else response.writeHead(404).end()
      })
      rogue.route(METAINFO_PATH, (_, response) => {
        const chosen = forged.get(forgedLength.value)!
        response.writeHead(200, { 'shoal-wire-port': String(chosen.port), 'content-type': 'application/x-bittorrent' })
        response.end(chosen.torrent)
      })
      for (const key of [tagReference('registry.test', foreign.repository, foreign.tag), tagReference('registry.test', honest.repository, honest.tag), big.digest, small.digest]) {
        await rogue.announce(key)
      }
    })
    after(async () => {
      await rogue?.stop()
      await stopCluster(nodes ?? [])
      await removeTestDir(dir)
    })

    it(keyed ? 'a tag nobody holds, announced by the rogue with its own manifest: 404, containerd asks the registry'
      : 'open swarm, still possible: a tag nobody holds resolves to the rogue\'s manifest', async () => {
      const pulled = await pullOutcome(nodes[1]!, manifestPath(foreign))
      if (keyed) {
        assert.equal(pulled.status, 404)
        assert.ok(((await stats(nodes[0]!)).dht['unauthenticatedPackets'] as number) > 0, 'the rogue\'s DHT packets were seen and dropped')
      } else {
        assert.equal(pulled.status, 200)
        assert.equal(pulled.digest, foreign.target.digest)
      }
    })

    it('a tag an honest node holds never resolves to the rogue\'s manifest (10 tries)', async () => {
      for (let attempt = 0; attempt < 10; attempt++) {
        const pulled = await pullOutcome(nodes[1]!, manifestPath(honest))
        assert.notEqual(pulled.digest, foreign.target.digest, `try ${attempt + 1}`)
        if (keyed) assert.equal(pulled.digest, honest.target.digest)
        else assert.ok(pulled.status === 404 || pulled.digest === honest.target.digest)
      }
    })

    it(keyed ? 'forged metainfo is never used: nobody asks the rogue anything, and the pull is clean and right'
      : 'forged metainfo (right length, wrong piece hashes) is used and the answer is cut, never clean with a wrong byte; its sender is convicted', async () => {
      // Open: the first believable metainfo wins, so the honest holder is held still until the
      // rogue has been asked; then the forged metainfo is the one used, whatever the load.
      if (!keyed) freeze(nodes[0]!)
      const pulling = pullOutcome(nodes[1]!, `/v2/${honest.repository}/blobs/${big.digest}`)
      try {
        if (!keyed) await eventually('the rogue asked for metainfo', () => rogue.requests.some((request) => request.includes(METAINFO_PATH)), 15_000, 20)
      } finally {
        if (!keyed) thaw(nodes[0]!)
      }
      const pulled = await pulling
      assert.equal(pulled.status, 200)
      if (keyed) {
        assert.ok(pulled.clean && pulled.digest === big.digest, `${pulled.bytes} bytes, clean ${pulled.clean}`)
        assert.deepEqual(rogue.requests, [], 'a keyed node asked the rogue')
        return
      }
      const usedForged = (await stats(nodes[1]!)).recent.some((transfer) => transfer.digest === big.digest && transfer.infoHash === forgedInfoHash.value)
      assert.ok(usedForged, 'premise: the victim downloaded with the forged metainfo')
      assert.ok(!pulled.clean, `a clean answer of ${pulled.bytes} bytes hashing to ${pulled.digest} from forged metainfo`)
      await eventually('the rogue convicted by the victim', async () => convicted(nodes[1]!), 10_000)
    })

    it('forged metainfo longer than the blob is refused before any byte: the pull is clean and right', async () => {
      forgedLength.value = big.bytes.length + 4 * MiB
      const asked = rogue.requests.length
      const pulled = await pullOutcome(nodes[2]!, `/v2/${honest.repository}/blobs/${big.digest}`)
      assert.equal(pulled.status, 200)
      assert.ok(pulled.clean && pulled.digest === big.digest, `${pulled.bytes} bytes, clean ${pulled.clean}`)
      if (keyed) assert.equal(rogue.requests.length, 0, 'a keyed node asked the rogue')
      else {
        assert.ok(rogue.requests.slice(asked).some((request) => request.includes(METAINFO_PATH)), 'the rogue was never asked for its long metainfo')
        assert.ok(await convicted(nodes[2]!), 'the sender of metainfo longer than the blob is not convicted')
      }
    })

    it('a Range answer from a node that knows the rogue is a clean 206 of the blob\'s bytes', async () => {
      forgedLength.value = big.bytes.length
      if (!keyed) assert.ok(await convicted(nodes[1]!), 'premise: the victim convicted the rogue in an earlier case')
      const range = { start: 3 * MiB, end: 4 * MiB - 1 }
      const pulled = await pullOutcome(nodes[1]!, `/v2/${honest.repository}/blobs/${big.digest}`, `bytes=${range.start}-${range.end}`)
      assert.equal(pulled.status, 206)
      assert.ok(pulled.clean, 'the 206 was cut')
      assert.equal(pulled.digest, sha256(big.bytes.subarray(range.start, range.end + 1)))
    })

    it('a lying holder of a small blob costs nothing: 10 pulls all answer 200 with the right bytes', async () => {
      for (let attempt = 0; attempt < 10; attempt++) {
        const pulled = await pullOutcome(nodes[2]!, `/v2/${honest.repository}/blobs/${small.digest}`)
        assert.equal(pulled.status, 200, `try ${attempt + 1}`)
        assert.equal(pulled.digest, small.digest)
      }
    })

    it(keyed ? 'a connection claiming an honest node\'s peer id is closed unheard: no block flows, nobody is banned'
      : 'open swarm, still possible: a stranger that proves no key gets blocks (the same connection the keyed holder closes)', async () => {
      const [holder, victim] = nodes as [LoopbackNode, LoopbackNode]
      const infoHash = (await computeMetainfo(big.digest, big.bytes.length, bytesOf(big.bytes))).infoHash
      assert.ok((await stats(holder)).transfers.some((transfer) => transfer.digest === big.digest && transfer.role === 'seed'), 'premise: the holder seeds the blob')
      const [victimHost, victimPort] = victim.p2p.split(':') as [string, string]
      const claimed = keyed ? encodePeerId(victimHost, Number(victimPort)) : undefined
      const outcome = await rogue.impersonate(holder.host, Number(holder.p2p.split(':')[1]), infoHash, claimed)
      if (keyed) {
        assert.deepEqual({ pieces: outcome.pieces, closed: outcome.closed }, { pieces: 0, closed: true })
        for (const node of nodes) assert.deepEqual((await stats(node)).bans.filter((ban) => !ban.peer.startsWith(rogue.host)), [], `bans on ${node.host}`)
      } else {
        assert.ok(outcome.pieces > 0, `no block: ${JSON.stringify(outcome)}`)
      }
    })

    it('fake DHT node ids that never answer do not enter the routing table; lookups keep finding holders', async () => {
      const victim = nodes[1]!
      const before = (await stats(victim)).dht['nodes'] as number
      await rogue.fakeNodeIds(victim, 1_000, 200)
      assert.ok(((await stats(victim)).dht['nodes'] as number) <= before + 1, 'the routing table grew with ids that never answered')
      for (let attempt = 0; attempt < 20; attempt++) {
        assert.equal((await fetch(`${victim.shoal.registryUrl}/v2/${honest.repository}/blobs/${small.digest}?ns=registry.test`, { method: 'HEAD' })).status, 200)
      }
    })

    it('100k announce_peer for random infohashes: holder records survive on the flooded node, lookups answer, memory stays bounded', async () => {
      const [holder, victim] = nodes as [LoopbackNode, LoopbackNode]
      const recordsOf = (dht: Record<string, unknown>, host: string): number =>
        (dht['recordSources'] as { source: string; records: number }[]).find((entry) => entry.source === host)?.records ?? 0
      const before = (await stats(victim)).dht
      assert.ok(recordsOf(before, holder.host) > 0, 'premise: the victim stores records of the holder')
      const rssBefore = rssMiB(victim)
      const started = performance.now()
      await rogue.floodAnnounces(victim, 100_000)
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      const seconds = (performance.now() - started) / 1000
      const after = (await stats(victim)).dht
      assert.ok(recordsOf(after, holder.host) >= recordsOf(before, holder.host), `the holder's records went from ${recordsOf(before, holder.host)} to ${recordsOf(after, holder.host)}`)
      // Announces are limited to 200 a second per source after a burst of 2000 (docs/security.md).
      const stored = recordsOf(after, rogue.host)
      assert.ok(keyed ? stored === 0 : stored <= 2_000 + 200 * seconds, `${stored} of the rogue's records stored in ${seconds.toFixed(1)} s`)
      const kind = keyed ? 'unauthenticatedPackets' : 'rateLimitedPackets'
      const dropped = (after[kind] as number) - (before[kind] as number)
      assert.ok(dropped >= 10_000, `premise: only ${dropped} of the 100k announces arrived (and were dropped as ${kind})`)
      for (let attempt = 0; attempt < 10; attempt++) {
        assert.equal((await fetch(`${victim.shoal.registryUrl}/v2/${honest.repository}/blobs/${small.digest}?ns=registry.test`, { method: 'HEAD' })).status, 200)
      }
      assert.ok(rssMiB(victim) < rssBefore + 128, `RSS ${rssBefore} → ${rssMiB(victim)} MiB`)
    })
  })
}
