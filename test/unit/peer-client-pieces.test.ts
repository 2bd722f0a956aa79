import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { PeerClient, PeerRequestError, PeerUnauthenticatedError } from '../../src/mirror/peer-client.js'
import { parseDigest } from '../../src/oci/digest.js'
import { PIECES_PATH } from '../../src/protocol/peer-api.js'
import { AUTH_HEADER, signAnswer, verifyRequest } from '../../src/protocol/peer-auth.js'
import { ReplayGuard } from '../../src/net/replay-guard.js'
import { testClusterKey } from '../support/shoal.js'

const DIGEST = parseDigest(`sha256:${'b'.repeat(64)}`)
const BLOB = randomBytes(2 * 1024 * 1024)

type Behaviour = 'honest' | 'unsigned' | 'wrong range' | 'short'

describe('whole pieces from a peer, with the cluster key', () => {
  const key = testClusterKey()
  let server: Server
  let port: number
  let behaviour: Behaviour = 'honest'
  let refusedRequests = 0

  before(async () => {
    const replay = new ReplayGuard()
    server = createServer((req, res) => {
      const proof = verifyRequest(key, replay, req.method!, req.url!, req.headers[AUTH_HEADER.toLowerCase()] as string | undefined)
      if (!('nonce' in proof) || req.url !== `${PIECES_PATH}${DIGEST}`) {
        refusedRequests++
        res.writeHead(401, { 'content-length': '0' }).end()
        return
      }
      const [start, end] = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range!)!.slice(1).map(Number) as [number, number]
      const shown = behaviour === 'wrong range' ? [start + 1, end + 1] : [start, end]
      const body = BLOB.subarray(start, behaviour === 'short' ? end : end + 1)
      const headers: Record<string, string> = { 'content-length': String(body.length), 'content-range': `bytes ${shown[0]}-${shown[1]}/${BLOB.length}` }
      if (behaviour !== 'unsigned') headers[AUTH_HEADER] = signAnswer(key, proof.nonce, 206, (name) => headers[name.toLowerCase()])
      res.writeHead(206, headers).end(body)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as { port: number }).port
  })
  after(() => server.close())

  it('signs its request and takes a signed answer\'s bytes', async () => {
    const client = new PeerClient(key)
    behaviour = 'honest'
    const piece = await client.fetchPiece({ host: '127.0.0.1', port }, { digest: DIGEST, start: 1024 * 1024, length: 1024 * 1024 })
    assert.ok(piece.equals(BLOB.subarray(1024 * 1024)))
    assert.equal(refusedRequests, 0)
    client.stop()
  })

  it('refuses an answer not signed with the key, one for another range, and one of another length', async () => {
    const client = new PeerClient(key)
    for (const [bad, expected] of [['unsigned', PeerUnauthenticatedError], ['wrong range', PeerRequestError], ['short', PeerRequestError]] as const) {
      behaviour = bad
      await assert.rejects(client.fetchPiece({ host: '127.0.0.1', port }, { digest: DIGEST, start: 0, length: 1024 * 1024 }), expected, bad)
    }
    behaviour = 'honest'
    const piece = await client.fetchPiece({ host: '127.0.0.1', port }, { digest: DIGEST, start: 0, length: 1000 })
    assert.ok(piece.equals(BLOB.subarray(0, 1000)))
    client.stop()
  })
})
