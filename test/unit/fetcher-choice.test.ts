import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { rankFetchers } from '../../src/upstream/fetcher-choice.js'

const nodes = Array.from({ length: 20 }, (_, index) => `10.0.0.${index + 1}:30020`)
const digests = Array.from({ length: 400 }, (_, index) => `sha256:${index.toString(16).padStart(64, '0')}`)

describe('who fetches a digest from upstream', () => {
  it('is ranked alike whatever order the nodes are known in, duplicates ignored', () => {
    for (const digest of digests.slice(0, 20)) {
      assert.deepEqual(rankFetchers(digest, [...nodes].reverse()), rankFetchers(digest, [...nodes, nodes[3]!]))
    }
  })

  it('spreads digests over the nodes', () => {
    const counts = new Map<string, number>()
    for (const digest of digests) {
      const first = rankFetchers(digest, nodes)[0]!
      counts.set(first, (counts.get(first) ?? 0) + 1)
    }
    assert.equal(counts.size, nodes.length, 'a node is never first')
    assert.ok(Math.max(...counts.values()) <= 3 * (digests.length / nodes.length), `one node is first for ${Math.max(...counts.values())} of ${digests.length}`)
  })

  it('moves only the digests of a node that leaves: the others keep their first fetcher', () => {
    const gone = nodes[7]!
    const without = nodes.filter((node) => node !== gone)
    for (const digest of digests) {
      const before = rankFetchers(digest, nodes)
      const after = rankFetchers(digest, without)
      assert.deepEqual(after, before.filter((node) => node !== gone))
    }
  })
})
