import { execFileSync } from 'node:child_process'
import { createSign, randomUUID, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'

export interface TokenRequest {
  service: string | null
  scope: string | null
  authorization: string | undefined
}

const base64url = (value: Buffer | string): string => Buffer.from(value).toString('base64url')

/**
 * A registry token server for docker-registry's `auth: token`: anonymous pull tokens (JWTs
 * signed with a self-signed key whose certificate the registry trusts, sent in `x5c`), for
 * every repository but those it is told to refuse. Records every request.
 */
export class TokenServer {
  readonly requests: TokenRequest[] = []
  readonly refused = new Set<string>()
  readonly certificateFile: string
  private readonly key: string
  private readonly certificateDer: Buffer
  private server: Server | undefined
  realm = ''

  constructor(dir: string, readonly issuer = 'shoal-test-issuer', readonly expiresInS = 300) {
    const keyFile = join(dir, 'token.key')
    this.certificateFile = join(dir, 'token.crt')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', this.certificateFile, '-days', '2', '-subj', '/CN=shoal-test-token'], { stdio: 'ignore' })
    this.key = readFileSync(keyFile, 'utf8')
    this.certificateDer = new X509Certificate(readFileSync(this.certificateFile)).raw
  }

  /** docker-registry's `auth` section for this server. */
  registryAuthConfig(service: string): string[] {
    return ['auth:', '  token:', `    realm: ${this.realm}`, `    service: ${service}`, `    issuer: ${this.issuer}`, `    rootcertbundle: ${this.certificateFile}`]
  }

  async start(host: string): Promise<void> {
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://token')
      const scope = url.searchParams.get('scope')
      this.requests.push({ service: url.searchParams.get('service'), scope, authorization: req.headers.authorization })
      const repository = /^repository:([^:]+):/.exec(scope ?? '')?.[1] ?? ''
      if (this.refused.has(repository)) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"access denied"}')
      const token = this.sign(url.searchParams.get('service') ?? '', repository)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: this.expiresInS, issued_at: new Date().toISOString() }))
    })
    await new Promise<void>((resolve) => this.server!.listen(0, host, () => resolve()))
    this.realm = `http://${host}:${(this.server.address() as { port: number }).port}/token`
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise((resolve) => this.server ? this.server.close(resolve) : resolve(undefined))
  }

  private sign(service: string, repository: string): string {
    const now = Math.floor(Date.now() / 1000)
    const header = { typ: 'JWT', alg: 'RS256', x5c: [this.certificateDer.toString('base64')] }
    const claims = { iss: this.issuer, sub: '', aud: service, exp: now + this.expiresInS, nbf: now - 10, iat: now, jti: randomUUID(),
      access: repository ? [{ type: 'repository', name: repository, actions: ['pull'] }] : [] }
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`
    const signature = createSign('RSA-SHA256').update(signingInput).sign(this.key)
    return `${signingInput}.${base64url(signature)}`
  }
}
