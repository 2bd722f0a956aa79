import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { rootTestsUnavailable } from '../support/environment.js'
import { eventually } from '../support/eventually.js'
import { removeTestDir } from '../support/processes.js'
import { runShoal } from '../support/shoal.js'
import { buildTestImage, hostPath, podmanRunOnce } from './podman.js'
import { startDaemon, type ImageDaemon } from './daemon.js'
import { buildImage, patternBytes, writeOciLayout } from '../support/images.js'

const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const skip = rootTestsUnavailable(['podman', 'containerd', 'docker-registry'])

interface PackageJson {
  version: string
}

describe('the container image', { skip }, () => {
  let dir: string
  let pkg: PackageJson
  const daemons: ImageDaemon[] = []

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-image-'))
    pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as PackageJson
    await buildTestImage(REPO, dir)
  })

  after(async () => {
    for (const daemon of daemons) await daemon.stop()
    await removeTestDir(dir)
  })

  it('prints its version, and help for every command', async () => {
    const version = await podmanRunOnce(['--version'])
    assert.equal(version.code, 0, version.stderr)
    assert.equal(version.stdout.trim(), pkg.version)
    const help = await podmanRunOnce([])
    assert.equal(help.code, 0, help.stderr)
    const commands = ['registry', 'configuration', 'cleanup', 'cleanup-wait', 'status', 'metainfo']
    for (const command of commands) assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'), `the default command (--help) lists ${command}`)
    for (const command of commands) {
      const result = await podmanRunOnce([command, '--help'])
      assert.equal(result.code, 0, `${command} --help: ${result.stderr}`)
      assert.match(result.stdout, new RegExp(`^Usage: shoal ${command} `, 'm'))
    }
  })

  it('computes the metainfo the host build computes', async () => {
    const file = join(dir, 'metainfo', 'blob.bin')
    await mkdir(join(dir, 'metainfo'))
    await writeFile(file, patternBytes(5 * 1024 * 1024 + 17))
    const inImage = await podmanRunOnce(['metainfo', file], hostPath(join(dir, 'metainfo'), true))
    assert.equal(inImage.code, 0, inImage.stderr)
    const onHost = await runShoal(['metainfo', file])
    assert.equal(onHost.code, 0, onHost.stderr)
    assert.match(inImage.stdout, /infohash/)
    assert.equal(inImage.stdout, onHost.stdout)
  })

  it('runs as a non-root user and holds the production dependencies only, linking nothing outside them', async () => {
    const shell = (script: string) => podmanRunOnce(['-c', script], ['--entrypoint', 'sh'])
    assert.equal((await shell('id -u')).stdout.trim(), '1000')
    const { packages } = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> }
    const installed = Object.entries(packages).filter(([path]) => path.startsWith('node_modules/'))
    const production = installed.filter(([, entry]) => !entry.dev && !entry.optional).map(([path]) => path)
    const devOnly = installed.filter(([, entry]) => entry.dev).map(([path]) => path)
    assert.ok(production.includes('node_modules/webtorrent') && devOnly.includes('node_modules/typescript'), 'the premise: the lockfile marks dev-only packages')
    const missing = await shell(`cd /app && for path in ${production.join(' ')}; do test -e "$path" || echo "$path"; done`)
    assert.equal(missing.stdout, '', 'every production package is in the image')
    const extra = await shell(`cd /app && for path in ${devOnly.join(' ')}; do test -e "$path" && echo "$path"; done; true`)
    assert.equal(extra.stdout, '', 'no package only development needs is in the image')
    const broken = await shell('find -L /app/node_modules -type l')
    assert.equal(broken.code, 0, broken.stderr)
    assert.equal(broken.stdout, '', 'no symbolic link in node_modules dangles')
    const targets = (await shell('find /app/node_modules -type l -exec readlink -f {} +')).stdout.split('\n').filter(Boolean)
    for (const target of targets) assert.ok(target.startsWith('/app/node_modules/'), `${target}: node_modules links only within itself`)
  })

  it('is not ready, and says why, when run as a user that cannot read the content store', async () => {
    const layout = join(dir, 'private-layout')
    const image = buildImage({ registry: 'docker.io', repository: 'library/private', tag: 'v1', layerSizes: [2048] })
    await writeOciLayout(layout, [image])
    await chmod(layout, 0o700)
    const daemon = await startDaemon(dir, 'unreadable', { mounts: hostPath(layout, true), args: ['--content-dir', layout], waitReady: false })
    daemons.push(daemon)
    await eventually('not ready', async () => (await fetch(`${daemon.registryUrl}/readyz`)).status === 503, 20_000)
    const stats = await (await fetch(`${daemon.metricsUrl}/stats`)).json() as { content: { available: boolean; error: string | null } }
    assert.equal(stats.content.available, false)
    assert.match(stats.content.error ?? '', /cannot read the content store at .* \(EACCES\) as uid 1000/)
    const blob = await fetch(`${daemon.registryUrl}/v2/library/private/blobs/${image.layers[0]!.digest}?ns=docker.io`)
    assert.equal(blob.status, 404, 'a blob it cannot read is not found here, so containerd goes upstream')
  })
})

