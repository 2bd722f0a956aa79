import type { ByteRange } from '../oci/range.js'

/** How the bytes of a blob held by peers can reach this node's client. */
export type PeerRoute =
  /** Whole from one holder at a time over HTTP, verified in memory, then sent. */
  | 'http-whole'
  /** Streamed from one holder at a time over HTTP, the next one continuing where one fails. */
  | 'http-stream'
  /** Pieces from every holder at once through the BitTorrent swarm. */
  | 'swarm'

/** What is known of a blob request so far; `size` once holders were asked. */
export interface BlobFacts {
  /** Another node asks: it gets this node's content or nothing. */
  fromPeer: boolean
  local: 'held' | 'absent' | 'unavailable'
  head: boolean
  size?: number
  range?: ByteRange | undefined
  /** Why no holder was found, once the lookup found none. */
  noHolder?: string
  /** Whether the request names its registry (`?ns=`), so upstream can be found. */
  registry?: boolean
}

export interface BlobPolicy {
  swarmMinSize: number
  singleSource?: boolean
  authenticatedPeers?: boolean
  /** Content nobody holds is pulled from upstream once for the cluster (`--upstream-fetch`). */
  firstPull?: boolean
}

/** The next thing to do for a blob request. */
export type BlobStep =
  | { kind: 'local' }
  | { kind: 'unavailable' }
  | { kind: 'not-found'; why: string }
  | { kind: 'find-holders' }
  | { kind: 'head' }
  /** Nobody holds it: pull it from upstream through the relay tree, as the cluster's one copy. */
  | { kind: 'first-pull' }
  /** Try the routes in order, each one a fallback for the one before; `excluded` says why a route is not in the list. */
  | { kind: 'transfer'; routes: PeerRoute[]; excluded?: string }

const PARTIAL_RANGE_OPEN_SWARM = 'an open swarm serves a part of a blob only from the swarm, whose end waits for the whole blob to be verified'

/**
 * The request path as a table: the same facts always give the same step. Pure, so every row
 * is a unit test; the mirror gathers the facts and runs the steps.
 */
export function planBlob(facts: BlobFacts, policy: BlobPolicy): BlobStep {
  if (facts.local === 'held') return { kind: 'local' }
  if (facts.fromPeer) return facts.local === 'unavailable' ? { kind: 'unavailable' } : { kind: 'not-found', why: 'blob is not on this node' }
  if (facts.noHolder !== undefined) {
    if (policy.firstPull && facts.registry) return { kind: 'first-pull' }
    return { kind: 'not-found', why: policy.firstPull ? `${facts.noHolder}, and the request does not name its registry (?ns=)` : facts.noHolder }
  }
  if (facts.size === undefined) return { kind: 'find-holders' }
  if (facts.head) return { kind: 'head' }
  return transferPlan(facts.size, facts.range, policy)
}

function transferPlan(size: number, range: ByteRange | undefined, policy: BlobPolicy): BlobStep {
  if (size < policy.swarmMinSize && !policy.singleSource) return { kind: 'transfer', routes: ['http-whole'] }
  // Over HTTP nobody vouches for a part of a blob in an open swarm: only a whole blob can be hashed.
  const partial = range !== undefined && !(range.start === 0 && range.end === size - 1)
  const streamable = !partial || policy.authenticatedPeers === true
  const routes: PeerRoute[] = [...(policy.singleSource ? [] : ['swarm' as const]), ...(streamable ? ['http-stream' as const] : [])]
  return streamable ? { kind: 'transfer', routes } : { kind: 'transfer', routes, excluded: PARTIAL_RANGE_OPEN_SWARM }
}
