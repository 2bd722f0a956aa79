import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import { after, before, describe, it } from 'node:test'
import bencode from 'bencode'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { StaticBootstrap } from '../../src/routing/bootstrap.js'
import { DhtRouter } from '../../src/routing/dht.js'
import { routingTarget } from '../../src/routing/router.js'
import type { PeerAddress } from '../../src/routing/router.js'
import { eventually } from '../support/eventually.js'
import { freeUdpPort } from '../support/ports.js'
import { silentLogger } from '../support/registry-app.js'

async function collect(router: DhtRouter, key: string, timeoutMs = 2000): Promise<PeerAddress[]> {
  const found: PeerAddress[] = []
  for await (const peer of router.lookup(key, { signal: AbortSignal.timeout(timeoutMs) })) found.push(peer)
  return found
}

describe('DHT router on loopback', () => {
  const routers: DhtRouter[] = []
  const hosts = [1, 2, 3, 4, 5].map((i) => `127.0.0.${20 + i}`)
  let port: number

  before(async () => {
    port = await freeUdpPort(hosts)
    const first = { host: hosts[0]!, port }
    for (const [i, host] of hosts.entries()) {
      const router = new DhtRouter(
        { bootstrap: new StaticBootstrap([first]), logger: silentLogger, metrics: createMetricsRegistry().metrics },
        { listen: { host, port }, announcePort: () => 5000 + i, bootstrapRefreshMs: 200 })
      await router.start()
      // The first node advertises while it knows no other node yet; it must still be found.
      if (i === 0) router.advertise(['sha256:early'])
      routers.push(router)
    }
  })
  after(async () => {
    for (const router of routers) await router.stop()
  })

  it('becomes ready once its routing table has a node; the lone first node is ready at once', async () => {
    await eventually('every router ready', () => routers.every((router) => router.ready()), 5000)
    assert.ok(routers.slice(1).every((router) => router.stats().nodes > 0))
  })

  it('finds the holders of a key, never itself, with the port of their HTTP API', async () => {
    routers[1]!.advertise(['sha256:abc'])
    routers[3]!.advertise(['sha256:abc'])
    const found = await eventually('both holders found', async () => { const peers = await collect(routers[4]!, 'sha256:abc'); return peers.length >= 2 && peers }, 5000)
    assert.deepEqual(found.map((peer) => `${peer.host}:${peer.port}`).sort(), [`${hosts[1]}:5001`, `${hosts[3]}:5003`])
    const fromHolder = await collect(routers[1]!, 'sha256:abc')
    assert.deepEqual(fromHolder.map((peer) => `${peer.host}:${peer.port}`), [`${hosts[3]}:5003`])
  })

  it('finds a key the first node advertised before any other node existed', async () => {
    const found = await eventually('the early key found', async () => { const peers = await collect(routers[4]!, 'sha256:early'); return peers.length > 0 && peers }, 5000)
    assert.deepEqual(found.map((peer) => `${peer.host}:${peer.port}`), [`${hosts[0]}:5000`])
  })

  it('finds nothing for an unknown key, quickly', async () => {
    const longest = AbortSignal.timeout(30_000)
    const found: PeerAddress[] = []
    for await (const peer of routers[2]!.lookup('sha256:nobody-has-this', { signal: longest })) found.push(peer)
    assert.deepEqual(found, [])
    assert.equal(longest.aborted, false, 'the lookup ran until it was stopped instead of ending when every node had answered')
  })

  it('a holder that stops asks the nodes storing its record to drop it; a record of a holder that stopped answering is dropped by whoever notices', async () => {
    const host = '127.0.0.26'
    const leaving = new DhtRouter({ bootstrap: new StaticBootstrap([{ host: hosts[0]!, port }]), logger: silentLogger, metrics: createMetricsRegistry().metrics },
      { listen: { host, port: await freeUdpPort([host]) }, announcePort: () => 5099 })
    await leaving.start()
    leaving.advertise(['sha256:leaving'])
    await eventually('the leaving holder found', async () => (await collect(routers[4]!, 'sha256:leaving')).length === 1, 5000)
    const withdrawnBefore = routers.reduce((sum, router) => sum + router.stats().withdrawnRecords, 0)
    await leaving.stop()
    assert.ok(routers.reduce((sum, router) => sum + router.stats().withdrawnRecords, 0) > withdrawnBefore, 'some node dropped the record on request')
    assert.deepEqual(await collect(routers[2]!, 'sha256:leaving', 3000), [], 'no node gives the record any more')

    routers[1]!.advertise(['sha256:frozen'])
    await eventually('the holder found', async () => (await collect(routers[4]!, 'sha256:frozen')).length === 1, 5000)
    for (const router of routers) router.forget('sha256:frozen', { host: hosts[1]!, port: 5001 })
    assert.ok(routers.every((router) => router === routers[1] || router.stats().forgottenRecords > 0))
    routers[1]!.withdraw(['sha256:frozen'])
    assert.deepEqual(await collect(routers[4]!, 'sha256:frozen', 3000), [])
  })

  it('stops announcing withdrawn keys', () => {
    routers[3]!.withdraw(['sha256:abc'])
    assert.equal(routers[3]!.advertisedKeys().has('sha256:abc'), false)
  })

  it('survives garbage and malformed KRPC packets and keeps answering', async () => {
    const socket = createSocket('udp4')
    const packets: Buffer[] = [
      Buffer.from('not bencode at all'),
      Buffer.alloc(0),
      Buffer.alloc(1400, 0xff),
      Buffer.from(bencode.encode({ t: 'aa', y: 'q', q: 'get_peers', a: { id: Buffer.alloc(20), info_hash: 5 } })),
      Buffer.from(bencode.encode({ t: 'aa', y: 'q', q: 'get_peers', a: { id: 7, info_hash: Buffer.alloc(3) } })),
      Buffer.from(bencode.encode({ t: 'aa', y: 'q', q: 'announce_peer', a: { id: Buffer.alloc(20), info_hash: [1, 2], port: 'x', token: 9 } })),
      Buffer.from(bencode.encode({ t: 'aa', y: 'q', q: 'find_node', a: { id: Buffer.alloc(20), target: { x: 1 } } })),
      Buffer.from(bencode.encode({ t: 'aa', y: 'q', q: 'ping' })),
      Buffer.from(bencode.encode({ t: 'aa', y: 'r', r: { id: Buffer.alloc(20), nodes: Buffer.alloc(7), values: [5, 'x'] } })),
      Buffer.from(bencode.encode({ t: 5, y: 'e', e: 'oops' })),
      Buffer.from(bencode.encode({ t: 'aa', y: 'q', q: 'get', a: { id: Buffer.alloc(20), target: 'short' } })),
      Buffer.from(bencode.encode({ t: 'aa', y: 'q', q: 'put', a: { id: Buffer.alloc(20), v: Buffer.alloc(2000), token: 'x' } })),
    ]
    for (const packet of packets) {
      for (const host of hosts) await new Promise<void>((resolve) => socket.send(packet, port, host, () => resolve()))
    }
    socket.close()
    await eventually('the guard to drop them', () => routers.every((router) => router.stats().droppedPackets >= packets.length - 1), 5000)
    routers[2]!.advertise(['sha256:after-fuzz'])
    const found = await eventually('the key advertised after the fuzz', async () => { const peers = await collect(routers[0]!, 'sha256:after-fuzz'); return peers.length > 0 && peers }, 5000)
    assert.deepEqual(found.map((peer) => `${peer.host}:${peer.port}`), [`${hosts[2]}:5002`])
  })

  it('answers get_peers with the records it stores and the closest nodes it knows, so a lookup goes on past nodes that store only stale records', async () => {
    routers[2]!.advertise(['sha256:with-nodes'])
    await eventually('the record stored at the first node', async () => (await collect(routers[4]!, 'sha256:with-nodes')).length > 0, 5000)
    const socket = createSocket('udp4')
    try {
      // The node also pings this unknown sender (it enters the table only by answering): wait for the reply.
      const answer = new Promise<{ r: { values?: unknown[]; nodes?: Uint8Array } }>((resolve) => socket.on('message', (message: Buffer) => {
        const decoded = bencode.decode(message) as { y?: Uint8Array; r?: unknown }
        if (Buffer.from(decoded.y ?? []).toString() === 'r') resolve(decoded as never)
      }))
      socket.send(Buffer.from(bencode.encode({ t: 'gp', y: 'q', q: 'get_peers', a: { id: Buffer.alloc(20, 9), info_hash: routingTarget('sha256:with-nodes') } })), port, hosts[0]!)
      const { r } = await answer
      assert.ok((r.values?.length ?? 0) > 0, 'the records')
      assert.ok((r.nodes?.length ?? 0) >= 26, 'and the closest nodes')
    } finally {
      socket.close()
    }
  })
})

describe('DHT lookups and this node\'s own record store', () => {
  it('a lookup gives the holders whose records this node stores itself, even when no other node answers for them', async () => {
    const [storingHost, holderHost] = ['127.0.0.31', '127.0.0.32']
    const metrics = createMetricsRegistry().metrics
    const storingPort = await freeUdpPort([storingHost])
    const storing = new DhtRouter({ bootstrap: new StaticBootstrap([]), logger: silentLogger, metrics }, { listen: { host: storingHost, port: storingPort }, announcePort: () => 5100 })
    await storing.start()
    try {
      // The holder leaves without asking anyone to drop its record: the storing node's copy is the only one left.
      const holder = new DhtRouter({ bootstrap: new StaticBootstrap([{ host: storingHost, port: storingPort }]), logger: silentLogger, metrics },
        { listen: { host: holderHost, port: await freeUdpPort([holderHost]) }, announcePort: () => 5101, withdrawTimeoutMs: 0 })
      try {
        await holder.start()
        holder.advertise(['sha256:stored-here'])
        assert.equal(holder.stats().announcesPending, 1, 'the announce is under way')
        await eventually('the announce out', () => holder.stats().announcesPending === 0, 5000)
        assert.ok(holder.stats().announcesSent >= 1)
        assert.ok(storing.stats().storedRecords > 0, 'stored once the announce is out')
      } finally {
        await holder.stop()
      }
      const found = await collect(storing, 'sha256:stored-here', 3000)
      assert.deepEqual(found.map((peer) => `${peer.host}:${peer.port}`), [`${holderHost}:5101`])
    } finally {
      await storing.stop()
    }
  })
})
