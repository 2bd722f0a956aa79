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
import { MiB, rssMiB } from './faults.js'
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

    it('forged metainfo (right length, wrong piece hashes): no answer ends cleanly with a wrong byte', async () => {
      const pulled = await pullOutcome(nodes[1]!, `/v2/${honest.repository}/blobs/${big.digest}`)
      assert.equal(pulled.status, 200)
      assert.ok(!pulled.clean || pulled.digest === big.digest, `a clean answer of ${pulled.bytes} bytes hashing to ${pulled.digest}`)
      if (keyed) assert.ok(pulled.clean && pulled.digest === big.digest)
    })

    it('forged metainfo longer than the blob is refused before any byte: the pull is clean and right', async () => {
      forgedLength.value = big.bytes.length + 4 * MiB
      const pulled = await pullOutcome(nodes[2]!, `/v2/${honest.repository}/blobs/${big.digest}`)
      assert.equal(pulled.status, 200)
      assert.ok(pulled.clean && pulled.digest === big.digest, `${pulled.bytes} bytes, clean ${pulled.clean}`)
    })

    it('a Range answer never ends cleanly with bytes that are not the blob\'s', async () => {
      forgedLength.value = big.bytes.length
      const range = { start: 3 * MiB, end: 4 * MiB - 1 }
      const pulled = await pullOutcome(nodes[1]!, `/v2/${honest.repository}/blobs/${big.digest}`, `bytes=${range.start}-${range.end}`)
      const expected = (await import('./faults.js')).sha256(big.bytes.subarray(range.start, range.end + 1))
      assert.ok(pulled.status === 206 || pulled.status === 404, `status ${pulled.status}`)
      if (pulled.status === 206) assert.ok(!pulled.clean || pulled.digest === expected, 'a clean 206 with the rogue\'s bytes')
    })

    it('a lying holder of a small blob costs nothing: 10 pulls all answer 200 with the right bytes', async () => {
      for (let attempt = 0; attempt < 10; attempt++) {
        const pulled = await pullOutcome(nodes[2]!, `/v2/${honest.repository}/blobs/${small.digest}`)
        assert.equal(pulled.status, 200, `try ${attempt + 1}`)
        assert.equal(pulled.digest, small.digest)
      }
    })

    it(keyed ? 'no honest node is banned, and a connection claiming an honest node\'s peer id is closed unheard'
      : 'open swarm: a connection claiming an honest node\'s peer id gets no piece', async () => {
      const [holder, victim] = nodes as [LoopbackNode, LoopbackNode]
      const infoHash = (await computeMetainfo(big.digest, big.bytes.length, bytesOf(big.bytes))).infoHash
      const [victimHost, victimPort] = victim.p2p.split(':') as [string, string]
      const outcome = await rogue.impersonate(holder.host, Number(holder.p2p.split(':')[1]), infoHash, encodePeerId(victimHost, Number(victimPort)))
      assert.ok(outcome.closed, 'the holder closed the connection')
      if (keyed) {
        for (const node of nodes) assert.deepEqual((await stats(node)).bans.filter((ban) => !ban.peer.startsWith(rogue.host)), [], `bans on ${node.host}`)
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

    it('100k announce_peer for random infohashes: holder records survive, lookups answer, memory stays bounded', async () => {
      const [, victim, third] = nodes as [LoopbackNode, LoopbackNode, LoopbackNode]
      const rssBefore = rssMiB(victim)
      await rogue.floodAnnounces(victim, 100_000)
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      const dht = (await stats(victim)).dht
      assert.ok((dht['storedRecords'] as number) <= 25_000 + 100, `${String(dht['storedRecords'])} records stored`)
      for (let attempt = 0; attempt < 10; attempt++) {
        assert.equal((await fetch(`${third.shoal.registryUrl}/v2/${honest.repository}/blobs/${big.digest}?ns=registry.test`, { method: 'HEAD' })).status, 200)
      }
      assert.ok(rssMiB(victim) < rssBefore + 128, `RSS ${rssBefore} → ${rssMiB(victim)} MiB`)
    })
  })
}
