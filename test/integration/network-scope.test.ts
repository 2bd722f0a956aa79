import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startLoopbackCluster, stopCluster, type LoopbackNode } from '../support/cluster.js'
import { rootTestsUnavailable } from '../support/environment.js'
import { buildImage } from '../support/images.js'
import { removeTestDir } from '../support/processes.js'

const skip = rootTestsUnavailable(['strace'])
const ADDRESS = /(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")/g

describe('network scope of the daemon (strace)', { skip }, () => {
  let dir: string
  let nodes: LoopbackNode[]
  const image = buildImage({ registry: 'registry.test', repository: 'scope/app', tag: 'v1', layerSizes: [40 * 1024 * 1024, 1000] })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-scope-'))
    nodes = await startLoopbackCluster({
      dir, base: 100, contents: [[image], [image], []],
      wrap: (index) => index === 2 ? ['strace', '-f', '-qq', '--seccomp-bpf', '-e', 'trace=connect,sendto,sendmsg,sendmmsg', '-o', join(dir, 'strace.txt')] : undefined,
    })
  })
  after(async () => {
    await stopCluster(nodes ?? [])
    await removeTestDir(dir)
  })

  it('contacts only its bootstrap peer and the nodes it learns from it, while pulling a blob and a tag', async () => {
    const requester = nodes[2]!
    for (const layer of image.layers) {
      const response = await fetch(`${requester.shoal.registryUrl}/v2/scope/app/blobs/${layer.digest}?ns=registry.test`)
      assert.equal(response.status, 200)
      await response.arrayBuffer()
    }
    assert.equal((await fetch(`${requester.shoal.registryUrl}/v2/scope/app/manifests/v1?ns=registry.test`)).status, 200)
    const trace = await readFile(join(dir, 'strace.txt'), 'utf8')
    const destinations = new Set<string>()
    for (const line of trace.split('\n')) {
      if (!/\b(connect|sendto|sendmsg|sendmmsg)\(/.test(line) || line.includes('AF_UNIX') || line.includes('AF_NETLINK')) continue
      for (const match of line.matchAll(ADDRESS)) destinations.add(match[1] ?? match[2]!)
    }
    const cluster = new Set(nodes.map((node) => node.host))
    assert.ok(destinations.size >= 2, `the trace saw the node talk to its peers: ${[...destinations].join(', ')}`)
    assert.deepEqual([...destinations].filter((address) => !cluster.has(address)), [], 'nothing outside the cluster was contacted')
    assert.ok(!trace.includes('htons(53)'), 'no DNS lookups')
  })
})
