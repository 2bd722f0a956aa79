import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { freePort, freeUdpPort } from '../support/ports.js'
import { removeTestDir } from '../support/processes.js'
import { runShoal, startShoal, type ShoalProcess } from '../support/shoal.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { EMPTY_TABLE_RETRY_MS } from '../../src/routing/dht.js'
import { eventually } from '../support/eventually.js'

describe('readiness follows the DHT routing table', () => {
  let dir: string
  const started: ShoalProcess[] = []
  const lone = '127.0.0.111'
  const joiner = '127.0.0.112'

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-ready-'))
  })
  after(async () => {
    for (const shoal of started) await shoal.stop()
    await removeTestDir(dir)
  })

  it('is not ready while its bootstrap peer does not answer, and is once it does', async () => {
    const loneDht = await freeUdpPort([lone])
    const node = await startShoal({
      dir, name: 'joiner', waitReady: false,
      registryAddr: `${joiner}:${await freePort(joiner)}`, metricsAddr: `${joiner}:${await freePort(joiner)}`,
      args: ['--content-dir', join(dir, 'empty'), '--data-dir', join(dir, 'joiner'), '--p2p-addr', `${joiner}:${await freeUdpPort([joiner])}`,
        '--static-bootstrap-peers', `${lone}:${loneDht}`],
    })
    started.push(node)
    await eventually('joiner to listen', async () => (await fetch(`${node.registryUrl}/livez`)).ok)
    // Not ready through more than one bootstrap retry (EMPTY_TABLE_RETRY_MS) while its only peer is silent.
    for (let probe = 0; probe < 15; probe++) {
      assert.equal((await fetch(`${node.registryUrl}/readyz`)).status, 503)
      await sleep(EMPTY_TABLE_RETRY_MS / 10)
    }

    const first = await startShoal({
      dir, name: 'lone', registryAddr: `${lone}:${await freePort(lone)}`, metricsAddr: `${lone}:${await freePort(lone)}`,
      args: ['--content-dir', join(dir, 'empty'), '--data-dir', join(dir, 'lone'), '--p2p-addr', `${lone}:${loneDht}`],
    })
    started.push(first)
    assert.equal((await fetch(`${first.registryUrl}/readyz`)).status, 200, 'a node without bootstrap peers is alone, so ready')
    await eventually('joiner to become ready', async () => (await fetch(`${node.registryUrl}/readyz`)).status === 200, 10_000)
  })

  it('refuses --bootstrap-kind dns without a domain', async () => {
    const result = await runShoal(['registry', '--bootstrap-kind', 'dns', '--content-dir', dir, '--registry-addr', '127.0.0.1:0', '--metrics-addr', '127.0.0.1:0'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /--bootstrap-kind dns needs --dns-bootstrap-domain/)
  })
})
