import { rankFetchers } from './fetcher-choice.js'

/** Children each node relays a first pull to, at most: the fetcher's uplink carries this many copies, not one per node. */
export const RELAY_FAN_OUT = 2

/**
 * The nodes `self` reads a first pull of `digest` from, nearest first: its parent in the relay
 * tree, then the parent's parent, up to the fetcher. The tree is a heap over the nodes ranked
 * for the digest (rendezvous hashing): the first is the fetcher, node `i` reads from node
 * `(i - 1) / fanOut`. A parent always ranks above its child and a node's weight for a digest
 * does not depend on who else is known, so two nodes whose views differ can never wait on each
 * other; an empty list means `self` fetches from upstream.
 */
export function relaySources(digest: string, self: string, nodes: Iterable<string>, fanOut = RELAY_FAN_OUT): string[] {
  const ranked = rankFetchers(digest, [self, ...nodes])
  const sources: string[] = []
  for (let position = ranked.indexOf(self); position > 0;) {
    position = Math.floor((position - 1) / fanOut)
    sources.push(ranked[position]!)
  }
  return sources
}
