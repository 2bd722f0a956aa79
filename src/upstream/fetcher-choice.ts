import { createHash } from 'node:crypto'

/**
 * The nodes that should fetch `digest` from upstream, best first: rendezvous (highest random
 * weight) hashing of the digest with each node's name. Every node that knows the same nodes
 * ranks them alike, without a coordinator; a node missing from one view moves the others up
 * by one place at most, so views that differ by a few nodes still agree on the first in most
 * cases (and at worst two nodes fetch).
 */
export function rankFetchers(digest: string, nodes: Iterable<string>): string[] {
  const weighed = [...new Set(nodes)].map((node) => ({ node, weight: createHash('sha256').update(digest).update('\0').update(node).digest().readBigUInt64BE(0) }))
  weighed.sort((a, b) => (a.weight === b.weight ? (a.node < b.node ? -1 : 1) : a.weight > b.weight ? -1 : 1))
  return weighed.map((entry) => entry.node)
}
