import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseBearerChallenge } from '../../src/upstream/challenge.js'
import { InvalidUpstreamError, upstreamFor, type UpstreamTarget } from '../../src/upstream/hosts.js'
import { UpstreamClient } from '../../src/upstream/registry-client.js'
import { UpstreamRefusedError } from '../../src/upstream/tokens.js'
import { ManualClock } from '../support/clock.js'
import { silentLogger } from '../support/registry-app.js'

async function listen(server: Server, host = '127.0.0.1'): Promise<URL> {
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()))
  const { port } = server.address() as { port: number }
  return new URL(`http://${host}:${port}`)
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
}

const target = (server: URL, extra: Partial<UpstreamTarget> = {}): UpstreamTarget => ({ registry: server.host, server, ca: [], skipVerify: false, ...extra })
const pull = (path: string) => ({ method: 'GET' as const, repository: 'library/app', path, signal: new AbortController().signal })

describe('upstream of a registry, as containerd finds it', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'shoal-upstream-')) })
  after(() => rm(dir, { recursive: true, force: true }))

  it('is https://<registry> without a hosts.toml, registry-1.docker.io for docker.io', async () => {
    assert.equal((await upstreamFor('ghcr.io', dir)).server.href, 'https://ghcr.io/')
    assert.equal((await upstreamFor('docker.io', undefined)).server.href, 'https://registry-1.docker.io/')
    assert.equal((await upstreamFor('10.0.0.9:5000', dir)).server.href, 'https://10.0.0.9:5000/')
  })

  it('takes server, ca (relative to the registry directory) and skip_verify from its hosts.toml', async () => {
    await mkdir(join(dir, 'registry.test'), { recursive: true })
    const pem = execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', '/dev/null', '-days', '1', '-subj', '/CN=test'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()
    await writeFile(join(dir, 'registry.test', 'ca.pem'), pem)
    await writeFile(join(dir, 'registry.test', 'hosts.toml'), 'server = "http://127.0.0.1:5000"\nca = "ca.pem"\nskip_verify = true\n[host."http://10.0.0.1:30020"]\ncapabilities = ["pull"]\n')
    const upstream = await upstreamFor('registry.test', dir)
    assert.equal(upstream.server.href, 'http://127.0.0.1:5000/')
    assert.deepEqual(upstream.ca, [pem])
    assert.equal(upstream.skipVerify, true)
  })

  it('refuses a name that is not a registry host, a hosts.toml it cannot use, a ca that is not there', async () => {
    for (const name of ['../etc', 'a/b', '', 'x'.repeat(300), 'host:port']) await assert.rejects(upstreamFor(name, dir), InvalidUpstreamError, name)
    const write = async (registry: string, text: string): Promise<void> => {
      await mkdir(join(dir, registry), { recursive: true })
      await writeFile(join(dir, registry, 'hosts.toml'), text)
    }
    await write('bad-toml.test', 'server = "https://x\n')
    await write('bad-server.test', 'server = "ftp://x"\n')
    await write('bad-ca.test', 'ca = "missing.pem"\n')
    await write('bad-skip.test', 'skip_verify = "yes"\n')
    for (const registry of ['bad-toml.test', 'bad-server.test', 'bad-ca.test', 'bad-skip.test']) {
      await assert.rejects(upstreamFor(registry, dir), (err: Error) => err instanceof InvalidUpstreamError && err.message.includes(registry), registry)
    }
  })
})

describe('a registry token challenge', () => {
  it('reads realm, service and scope of a Bearer challenge; none from Basic or garbage', () => {
    const challenge = parseBearerChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"')
    assert.equal(challenge?.realm.href, 'https://auth.docker.io/token')
    assert.equal(challenge?.service, 'registry.docker.io')
    assert.equal(challenge?.scope, 'repository:library/nginx:pull')
    assert.equal(parseBearerChallenge(['Basic realm="x"', 'Bearer realm="http://a/t"'])?.realm.host, 'a')
    for (const header of [undefined, 'Basic realm="x"', 'Bearer', 'Bearer realm="file:///etc/passwd"', 'Bearer realm=', '\u0000']) assert.equal(parseBearerChallenge(header), undefined, String(header))
  })
})

describe('requests to an upstream registry on nobody\'s behalf', () => {
  const clock = new ManualClock()
  const client = new UpstreamClient({ clock, logger: silentLogger })
  const realmAsked: IncomingMessage[] = []
  const registryAsked: IncomingMessage[] = []
  const elsewhereAsked: IncomingMessage[] = []
  let refuseTokens = false
  let realm: URL
  let registry: URL
  let elsewhere: URL
  const servers: Server[] = []
  const serve = async (handler: RequestListener, host?: string): Promise<URL> => {
    const server = createServer(handler)
    servers.push(server)
    return listen(server, host)
  }

  before(async () => {
    realm = await serve((req, res) => {
      realmAsked.push(req)
      if (refuseTokens) return void res.writeHead(401).end()
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `t${realmAsked.length}`, expires_in: 120 }))
    }, '127.0.0.2')
    elsewhere = await serve((req, res) => {
      elsewhereAsked.push(req)
      res.writeHead(200).end('from object storage')
    }, '127.0.0.3')
    registry = await serve((req, res) => {
      registryAsked.push(req)
      if (!req.headers.authorization?.startsWith('Bearer t')) {
        return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm.origin}/token",service="registry.test",scope="repository:library/app:pull"` }).end()
      }
      if (req.url?.includes('/blobs/')) return void res.writeHead(307, { location: `${elsewhere.origin}/bucket/blob` }).end()
      res.writeHead(200).end('manifest bytes')
    })
  })
  after(async () => {
    await client.close()
    for (const server of servers) await close(server)
  })

  it('gets an anonymous token when challenged, retries with it, and reuses it until it expires', async () => {
    const first = await client.fetch(target(registry), pull('/v2/library/app/manifests/sha256:aa'))
    assert.equal(first.status, 200)
    assert.equal(await readAll(first.body), 'manifest bytes')
    assert.equal(realmAsked.length, 1)
    const asked = new URL(realmAsked[0]!.url!, realm)
    assert.equal(asked.searchParams.get('scope'), 'repository:library/app:pull')
    assert.equal(asked.searchParams.get('service'), 'registry.test')
    assert.equal(realmAsked[0]!.headers.authorization, undefined, 'credentials sent to the realm')
    await readAll((await client.fetch(target(registry), pull('/v2/library/app/manifests/sha256:bb'))).body)
    assert.equal(realmAsked.length, 1, 'the token was not reused')
    clock.advance(120_000)
    await readAll((await client.fetch(target(registry), pull('/v2/library/app/manifests/sha256:cc'))).body)
    assert.equal(realmAsked.length, 2, 'an expired token was reused')
  })

  it('follows a redirect to another host without carrying the token there', async () => {
    const answer = await client.fetch(target(registry), pull('/v2/library/app/blobs/sha256:dd'))
    assert.equal(answer.status, 200)
    assert.equal(await readAll(answer.body), 'from object storage')
    assert.equal(answer.url.host, elsewhere.host)
    assert.equal(elsewhereAsked.at(-1)!.headers.authorization, undefined, 'Authorization carried to another host')
    assert.match(registryAsked.at(-1)!.headers.authorization ?? '', /^Bearer t/)
  })

  it('says at once when the anonymous token is refused', async () => {
    refuseTokens = true
    try {
      await assert.rejects(client.fetch(target(registry), { ...pull('/v2/library/private/manifests/x'), repository: 'library/private' }),
        (err: Error) => err instanceof UpstreamRefusedError && err.status === 401)
    } finally {
      refuseTokens = false
    }
  })
})

describe('TLS towards an upstream', () => {
  let dir: string
  let server: Server
  let url: URL
  const client = new UpstreamClient({ clock: new ManualClock(), logger: silentLogger })

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shoal-upstream-tls-'))
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
    server = createTlsServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }, (_req, res) => res.writeHead(200).end('ok'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    url = new URL(`https://127.0.0.1:${(server.address() as { port: number }).port}`)
  })
  after(async () => {
    await client.close()
    await close(server)
    await rm(dir, { recursive: true, force: true })
  })

  it('is verified by default, trusts the hosts.toml ca, and skips the check only when told', async () => {
    await assert.rejects(client.fetch(target(url), pull('/v2/')), /certificate/i)
    const ca = await readFile(join(dir, 'cert.pem'), 'utf8')
    assert.equal(await readAll((await client.fetch(target(url, { ca: [ca] }), pull('/v2/'))).body), 'ok')
    assert.equal(await readAll((await client.fetch(target(url, { skipVerify: true }), pull('/v2/'))).body), 'ok')
  })
})

async function readAll(body: AsyncIterable<Buffer | string>): Promise<string> {
  let text = ''
  for await (const chunk of body) text += chunk.toString()
  return text
}
