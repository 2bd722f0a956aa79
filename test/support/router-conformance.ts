import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { PeerAddress, Router } from '../../src/routing/router.js'
import { eventually } from './eventually.js'

export interface RouterSubject {
  /** Routers of one network; router i announces port 5000+i in its records. */
  routers: Router[]
  hosts: string[]
  stop(): Promise<void>
}

async function lookupAll(router: Router, key: string): Promise<string[]> {
  const found: string[] = []
  for await (const peer of router.lookup(key, { signal: AbortSignal.timeout(2000) })) found.push(`${peer.host}:${peer.port}`)
  return found.sort()
}

async function eventuallyFinds(router: Router, key: string, expected: string[]): Promise<void> {
  let found: string[] = []
  await eventually(`${key} held by ${expected.join(', ') || 'nobody'}`, async () => JSON.stringify(found = await lookupAll(router, key)) === JSON.stringify(expected), 5000, 100)
    .catch(() => assert.deepEqual(found, expected))
}

/** What the mirror and the advertiser rely on from any Router. */
export function routerConformance(adapter: string, setup: () => Promise<RouterSubject>): void {
  describe(`Router conformance: ${adapter}`, () => {
    let subject: RouterSubject
    const at = (index: number): string => `${subject.hosts[index]}:${5000 + index}`
    before(async () => {
      subject = await setup()
    })
    after(() => subject?.stop())

    it('becomes ready', async () => {
      await eventually('every router ready', () => subject.routers.every((router) => router.ready()), 5000)
    })

    it('finds every holder of a key, and never the asking node', async () => {
      subject.routers[0]!.advertise(['sha256:one'])
      subject.routers[1]!.advertise(['sha256:one', 'registry.test/app:v1'])
      await eventuallyFinds(subject.routers[2]!, 'sha256:one', [at(0), at(1)].sort())
      await eventuallyFinds(subject.routers[0]!, 'sha256:one', [at(1)])
      await eventuallyFinds(subject.routers[2]!, 'registry.test/app:v1', [at(1)])
    })

    it('ends a lookup for a key nobody has, with nothing', async () => {
      assert.deepEqual(await lookupAll(subject.routers[2]!, 'sha256:nobody'), [])
    })

    it('ends a lookup at once when its signal is already aborted', async () => {
      const found: PeerAddress[] = []
      for await (const peer of subject.routers[2]!.lookup('sha256:one', { signal: AbortSignal.abort() })) found.push(peer)
      assert.deepEqual(found, [])
    })

    it('lists the keys it advertises and forgets withdrawn ones', () => {
      const router = subject.routers[1]!
      assert.deepEqual([...router.advertisedKeys()].sort(), ['registry.test/app:v1', 'sha256:one'])
      router.withdraw(['registry.test/app:v1'])
      assert.deepEqual([...router.advertisedKeys()], ['sha256:one'])
    })
  })
}
