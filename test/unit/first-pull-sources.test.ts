import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { FirstPullSources } from '../../src/mirror/first-pull-sources.js'
import { HolderHealth } from '../../src/mirror/holder-health.js'
import { PeerClient } from '../../src/mirror/peer-client.js'
import { sha256Digest } from '../../src/oci/digest.js'
import type { ClusterMembers } from '../../src/routing/members.js'
import { peerKey, type PeerAddress } from '../../src/routing/router.js'
import { rankFetchers } from '../../src/upstream/fetcher-choice.js'
import { SourceStalledError } from '../../src/upstream/first-pulls.js'
import type { FirstPullRequest } from '../../src/upstream/pull-source.js'
import { UpstreamClient } from '../../src/upstream/registry-client.js'
import { UpstreamSource } from '../../src/upstream/upstream-source.js'
import { systemClock } from '../../src/util/clock.js'
import { freePort } from '../support/ports.js'
import { silentLogger } from '../support/registry-app.js'

const SELF = '127.0.0.1:1'

/** A request whose digest ranks `peer` above this node, so the peer is this node's parent. */
function requestBelow(peer: string): FirstPullRequest {
  for (let seed = 0; ; seed++) {
    const digest = sha256Digest(`blob ${seed}`)
    if (rankFetchers(digest, [SELF, peer])[0] === peer) return { registry: 'registry.test', repository: 'team/app', digest, kind: 'blobs' }
  }
}

describe('the peers a first pull reads from', () => {
  let server: Server
  let mute: Server
  const answering: PeerAddress = { host: '127.0.0.1', port: 0 }
  const silent: PeerAddress = { host: '127.0.0.1', port: 0 }
  let refusing: PeerAddress
  const peers = new PeerClient()
  const client = new UpstreamClient({ clock: systemClock, logger: silentLogger })

  before(async () => {
    server = createServer((_, res) => void res.writeHead(503).end())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    answering.port = (server.address() as { port: number }).port
    // Takes requests and never answers them.
    mute = createServer(() => {})
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', () => resolve()))
    silent.port = (mute.address() as { port: number }).port
    refusing = { host: '127.0.0.1', port: await freePort('127.0.0.1') }
  })
  after(async () => {
    peers.stop()
    await client.close()
    for (const each of [server, mute]) {
      each.closeAllConnections()
      await new Promise((resolve) => each.close(resolve))
    }
  })

  const sourcesWith = (peer: PeerAddress, health: HolderHealth) => {
    const members = { list: () => new Map([[peerKey(peer), peer]]) } as unknown as ClusterMembers
    const upstream = new UpstreamSource({ client }, { registryConfigPath: undefined })
    return new FirstPullSources({ members, peers, upstream, health, self: () => SELF })
  }

  it('skips a node that cannot be reached or stops answering, not one that answers that upstream will not give it now', async () => {
    for (const [name, peer, skipped, stall] of [['answers 503', answering, false, false], ['refuses connections', refusing, true, false], ['stalls', silent, true, true]] as const) {
      const health = new HolderHealth({ clock: systemClock })
      const request = requestBelow(peerKey(peer))
      const [parent, ...rest] = sourcesWith(peer, health).for(request)
      assert.deepEqual([parent?.name, rest.map((source) => source.kind)], [peerKey(peer), ['upstream', 'upstream']], `${name}: the parent, then upstream twice`)
      const controller = new AbortController()
      const opening = parent!.open(0, controller.signal)
      if (stall) setTimeout(() => controller.abort(new SourceStalledError('no answer')), 200)
      await assert.rejects(opening)
      assert.equal(health.isSkipped(peer), skipped, `${name}: skipped`)
    }
  })
})
