import type { ClusterMembers } from '../routing/members.js'
import { peerKey, type PeerAddress } from '../routing/router.js'
import type { FirstPullRequest, PullSource } from '../upstream/pull-source.js'
import { relaySources } from '../upstream/relay-tree.js'
import { UpstreamRefusedError } from '../upstream/tokens.js'
import { SourceStalledError } from '../upstream/first-pulls.js'
import type { UpstreamSource } from '../upstream/upstream-source.js'
import type { HolderHealth } from './holder-health.js'
import { PeerRequestError, PeerUnauthenticatedError, type PeerClient } from './peer-client.js'

export interface FirstPullSourcesComponents {
  members: ClusterMembers
  peers: PeerClient
  upstream: UpstreamSource
  health: HolderHealth
  /** This node's name as the others know it (`host:registryPort`). */
  self: () => string
}

/**
 * Where this node reads a first pull from: up the relay tree (its parent first, the fetcher
 * last) among the nodes it knows and does not skip, then upstream itself, once more to resume a cut body.
 */
export class FirstPullSources {
  private readonly peers = new WeakMap<PullSource, PeerAddress>()

  constructor(private readonly components: FirstPullSourcesComponents) {}

  for(request: FirstPullRequest): PullSource[] {
    const { health } = this.components
    const members = new Map([...this.components.members.list()].filter(([, peer]) => !health.isSkipped(peer)))
    const chain = relaySources(request.digest, this.components.self(), members.keys())
    // Upstream twice: a body it cuts is continued from the byte reached, as a client resumes a download.
    const upstream = this.components.upstream.forRequest(request)
    return [...chain.map((name) => this.peerSource(members.get(name)!, request)), upstream, upstream]
  }

  /** A node that sent bytes which, with the rest, did not hash to the digest. */
  convict(source: PullSource, digest: string, why: string): void {
    const peer = this.peers.get(source)
    if (peer) this.components.health.lied(peer, digest, why)
  }

  private peerSource(peer: PeerAddress, request: FirstPullRequest): PullSource {
    const source: PullSource = {
      kind: 'peer',
      name: peerKey(peer),
      open: async (from, signal) => {
        try {
          return await this.components.peers.openFirstPull(peer, request, from, { signal })
        } catch (err) {
          if (unreachable(err, signal)) this.components.health.failed(peer, request.digest, err instanceof Error ? err.message : String(err))
          throw err
        }
      },
    }
    this.peers.set(source, peer)
    return source
  }
}

/**
 * Whether a peer's failure says the node is unreachable (skipped a while by every request), not
 * that upstream would not give the content: a node that answers 503 because the registry
 * answered 429 is healthy, and skipping it would send every node to the registry.
 */
function unreachable(err: unknown, signal: AbortSignal): boolean {
  if (signal.aborted) return signal.reason instanceof SourceStalledError
  if (err instanceof PeerUnauthenticatedError) return true
  return !(err instanceof PeerRequestError) && !(err instanceof UpstreamRefusedError)
}
