import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Command } from 'commander'
import { CONFIGURATION_OPTIONS, REGISTRY_OPTIONS } from '../../src/config/commands.js'
import { addOptions, envName, flagName, resolveOptions, type OptionTable } from '../../src/config/options.js'
import { formatDuration, parseByteSize, parseDuration } from '../../src/config/values.js'

async function parse<T extends OptionTable>(table: T, argv: string[], env: Record<string, string> = {}) {
  const saved = { ...process.env }
  Object.assign(process.env, env)
  try {
    const command = addOptions(new Command('test').exitOverride().configureOutput({ writeErr: () => {} }), table)
    command.parse(argv, { from: 'user' })
    return await resolveOptions(command, table)
  } finally {
    for (const key of Object.keys(env)) delete process.env[key]
    Object.assign(process.env, saved)
  }
}

describe('settings', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-config-'))
  })
  after(() => rm(dir, { recursive: true, force: true }))

  it('names flags and environment variables as Spegel does', () => {
    assert.equal(flagName('containerdRegistryConfigPath'), 'containerd-registry-config-path')
    assert.equal(envName('registryAddr'), 'REGISTRY_ADDR')
  })

  it('uses defaults', async () => {
    const config = await parse(REGISTRY_OPTIONS, [])
    assert.deepEqual(config.registryAddr, { host: undefined, port: 5000 })
    assert.equal(config.containerdNamespace, 'k8s.io')
    assert.equal(config.resolveTags, true)
  })

  it('takes flags over environment over file', async () => {
    const file = join(dir, 'shoal.toml')
    await writeFile(file, 'registry-addr = "127.0.0.1:7000"\nmetrics-addr = "127.0.0.1:7001"\nlog-level = "debug"\nresolve-tags = false\n')
    const config = await parse(REGISTRY_OPTIONS, ['--config-file', file, '--registry-addr', ':6000'], { METRICS_ADDR: ':6001' })
    assert.deepEqual(config.registryAddr, { host: undefined, port: 6000 })
    assert.deepEqual(config.metricsAddr, { host: undefined, port: 6001 })
    assert.equal(config.logLevel, 'debug')
    assert.equal(config.resolveTags, false)
  })

  it('accepts lists as repeated flags, comma lists and environment strings', async () => {
    const config = await parse(CONFIGURATION_OPTIONS, ['--mirrored-registries', 'https://docker.io,https://ghcr.io', '--mirrored-registries', 'http://10.0.0.9:5000',
      '--resolve-tags=false', '--prepend-existing'], { MIRROR_TARGETS: 'http://127.0.0.1:30020 http://127.0.0.1:30021/' })
    assert.deepEqual(config.mirroredRegistries.map((registry) => registry.host), ['docker.io', 'ghcr.io', '10.0.0.9:5000'])
    assert.deepEqual(config.mirrorTargets, ['http://127.0.0.1:30020', 'http://127.0.0.1:30021'])
    assert.equal(config.resolveTags, false)
    assert.equal(config.prependExisting, true)
  })

  it('refuses bad values with a message that says what is expected', async () => {
    await assert.rejects(parse(REGISTRY_OPTIONS, ['--registry-addr', 'localhost']), /not an address/)
    await assert.rejects(parse(REGISTRY_OPTIONS, ['--resolve-tags=maybe']), /not a boolean/)
    await assert.rejects(parse(REGISTRY_OPTIONS, ['--log-level', 'loud']), /log level must be one of/)
    await assert.rejects(parse(REGISTRY_OPTIONS, [], { REGISTRY_ADDR: ':99999' }), /port out of range/)
  })

  it('refuses unknown settings and malformed TOML in the config file', async () => {
    const unknown = join(dir, 'unknown.toml')
    await writeFile(unknown, 'registry-adr = ":5000"\n')
    await assert.rejects(parse(REGISTRY_OPTIONS, ['--config-file', unknown]), /unknown setting "registry-adr"/)
    const broken = join(dir, 'broken.toml')
    await writeFile(broken, 'registry-addr = \n')
    await assert.rejects(parse(REGISTRY_OPTIONS, ['--config-file', broken]), /config file .*broken.toml/)
    await assert.rejects(parse(REGISTRY_OPTIONS, ['--config-file', join(dir, 'absent.toml')]), /config file .*absent.toml/)
  })

  it('parses durations and sizes', () => {
    assert.equal(parseDuration('20ms'), 20)
    assert.equal(parseDuration('1m30s'), 90_000)
    assert.equal(parseDuration('1.5s'), 1500)
    assert.throws(() => parseDuration('5'), /not a duration/)
    assert.equal(parseByteSize('32MiB'), 32 * 1024 * 1024)
    assert.equal(parseByteSize('1.5GB'), 1.5e9)
    assert.equal(parseByteSize('4096'), 4096)
    assert.throws(() => parseByteSize('lots'), /not a size/)
  })
})

describe('defaults, written once', () => {
  it('`shoal registry --help` shows the defaults the components use when given nothing', async () => {
    const { execFileSync } = await import('node:child_process')
    const help = execFileSync(process.execPath, [new URL('../../src/main.js', import.meta.url).pathname, 'registry', '--help'], { encoding: 'utf8' })
    const shown = (flag: string): string => {
      const match = new RegExp(`--${flag} [^\\n]*?\\(default: ([^)]+)\\)`, 's').exec(help.replace(/\n\s+/g, ' '))
      assert.ok(match, `--${flag} shows a default in:\n${help}`)
      return match[1]!.replace(/"/g, '')
    }
    const { DEFAULT_RESOLVE_TIMEOUT_MS, DEFAULT_STALL_TIMEOUT_MS } = await import('../../src/mirror/mirror.js')
    const { DEFAULT_CLIENT_TIMEOUT_MS } = await import('../../src/net/http-server.js')
    const { DEFAULT_PEER_IDLE_MS } = await import('../../src/swarm/wire-guard.js')
    const { DEFAULT_LINGER_MS } = await import('../../src/swarm/webtorrent-options.js')
    const { DEFAULT_MAX_BLOB_STREAMS } = await import('../../src/registry/stream-slots.js')
    const { DEFAULT_MAX_WIRES, DEFAULT_MAX_WIRES_PER_SWARM } = await import('../../src/swarm/peer-wires.js')
    assert.equal(parseDuration(shown('mirror-resolve-timeout')), DEFAULT_RESOLVE_TIMEOUT_MS)
    assert.equal(parseDuration(shown('stall-timeout')), DEFAULT_STALL_TIMEOUT_MS)
    assert.equal(parseDuration(shown('client-timeout')), DEFAULT_CLIENT_TIMEOUT_MS)
    assert.equal(parseDuration(shown('peer-idle-timeout')), DEFAULT_PEER_IDLE_MS)
    assert.equal(parseDuration(shown('download-linger')), DEFAULT_LINGER_MS)
    assert.equal(Number(shown('max-blob-streams')), DEFAULT_MAX_BLOB_STREAMS)
    assert.equal(Number(shown('max-wires-per-swarm')), DEFAULT_MAX_WIRES_PER_SWARM)
    assert.equal(Number(shown('max-wires')), DEFAULT_MAX_WIRES)
  })

  it('formats a duration the way it parses back', () => {
    for (const ms of [1, 500, 1000, 1500, 10_000, 90_000, 5 * 60_000, 3_600_000]) assert.equal(parseDuration(formatDuration(ms)), ms)
    assert.equal(formatDuration(30_000), '30s')
    assert.equal(formatDuration(500), '500ms')
  })
})

describe('DNS bootstrap', () => {
  it('turns A records into DHT addresses and an absent name into none', async () => {
    const { DnsBootstrap } = await import('../../src/routing/bootstrap.js')
    const found = new DnsBootstrap('shoal-bootstrap.shoal.svc', 5001, async () => ['10.0.0.1', '10.0.0.2'])
    assert.deepEqual(await found.addresses(), [{ host: '10.0.0.1', port: 5001 }, { host: '10.0.0.2', port: 5001 }])
    const absent = new DnsBootstrap('nothing.invalid', 5001, async () => { throw Object.assign(new Error('no'), { code: 'ENOTFOUND' }) })
    assert.deepEqual(await absent.addresses(), [])
    const broken = new DnsBootstrap('x', 5001, async () => { throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) })
    await assert.rejects(broken.addresses(), /refused/)
  })
})
