import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { planBlob, type BlobFacts, type BlobPolicy, type BlobStep } from '../../src/mirror/plan.js'

const MiB = 2 ** 20
const keyed: BlobPolicy = { swarmMinSize: MiB, authenticatedPeers: true }
const open: BlobPolicy = { swarmMinSize: MiB, authenticatedPeers: false }
const asked: BlobFacts = { fromPeer: false, local: 'absent', head: false }
const big = { ...asked, size: 4 * MiB }
const tail = { start: MiB, end: 4 * MiB - 1 }
const PARTIAL = /open swarm serves a part of a blob only from the swarm/

describe('the request path as a table', () => {
  const rows: [string, BlobFacts, BlobPolicy, BlobStep][] = [
    ['held here: from the content store', { ...asked, local: 'held' }, keyed, { kind: 'local' }],
    ['held here, asked by a peer', { ...asked, local: 'held', fromPeer: true }, keyed, { kind: 'local' }],
    ['a peer asks, the store does not answer: 503', { ...asked, local: 'unavailable', fromPeer: true }, keyed, { kind: 'unavailable' }],
    ['a peer asks for what is not here: 404, peers are never asked for a peer', { ...asked, fromPeer: true }, keyed, { kind: 'not-found', why: 'blob is not on this node' }],
    ['not here: find the holders and the size', asked, keyed, { kind: 'find-holders' }],
    ['the store does not answer containerd: the peers are asked', { ...asked, local: 'unavailable' }, keyed, { kind: 'find-holders' }],
    ['no holder, first pulls on, the registry named: a first pull', { ...asked, noHolder: 'nobody', registry: true }, { ...keyed, firstPull: true }, { kind: 'first-pull' }],
    ['no holder, HEAD: a first pull too (containerd HEADs a manifest before it GETs it)', { ...asked, head: true, noHolder: 'nobody', registry: true }, { ...keyed, firstPull: true }, { kind: 'first-pull' }],
    ['no holder, first pulls off: 404, containerd goes upstream', { ...asked, noHolder: 'nobody', registry: true }, keyed, { kind: 'not-found', why: 'nobody' }],
    ['no holder, no ?ns=: 404 (upstream cannot be found)', { ...asked, noHolder: 'nobody', registry: false }, { ...keyed, firstPull: true },
      { kind: 'not-found', why: 'nobody, and the request does not name its registry (?ns=)' }],
    ['HEAD once the size is known: no transfer', { ...big, head: true }, keyed, { kind: 'head' }],
    ['small: whole over HTTP', { ...asked, size: MiB - 1 }, keyed, { kind: 'transfer', routes: ['http-whole'] }],
    ['small with a range, open swarm: whole over HTTP (the whole is hashed)', { ...asked, size: 1000, range: { start: 10, end: 19 } }, open, { kind: 'transfer', routes: ['http-whole'] }],
    ['large: the swarm, then streamed over HTTP', big, keyed, { kind: 'transfer', routes: ['swarm', 'http-stream'] }],
    ['large, whole range, open swarm: the swarm, then HTTP', { ...big, range: { start: 0, end: 4 * MiB - 1 } }, open, { kind: 'transfer', routes: ['swarm', 'http-stream'] }],
    ['large, a range, keyed: the swarm, then HTTP', { ...big, range: tail }, keyed, { kind: 'transfer', routes: ['swarm', 'http-stream'] }],
    ['single source: streamed over HTTP only', big, { ...keyed, singleSource: true }, { kind: 'transfer', routes: ['http-stream'] }],
    ['single source, small: streamed over HTTP too', { ...asked, size: 10 }, { ...keyed, singleSource: true }, { kind: 'transfer', routes: ['http-stream'] }],
  ]
  for (const [name, facts, policy, step] of rows) {
    it(name, () => assert.deepEqual(planBlob(facts, policy), step))
  }

  it('a range of a large blob in an open swarm: only the swarm, and the plan says why HTTP is out', () => {
    const step = planBlob({ ...big, range: tail }, open)
    assert.equal(step.kind, 'transfer')
    assert.deepEqual(step.kind === 'transfer' && step.routes, ['swarm'])
    assert.match(step.kind === 'transfer' ? step.excluded ?? '' : '', PARTIAL)
  })

  it('single source with a range in an open swarm: no route at all (404, containerd asks the registry)', () => {
    const step = planBlob({ ...big, range: tail }, { ...open, singleSource: true })
    assert.deepEqual(step.kind === 'transfer' && step.routes, [])
    assert.match(step.kind === 'transfer' ? step.excluded ?? '' : '', PARTIAL)
  })
})
