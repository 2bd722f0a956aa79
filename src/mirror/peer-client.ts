import type { Readable } from 'node:stream'
import { collect } from '../content/read.js'
import { HttpClient, type HttpAnswer } from '../net/http-client.js'
import { RangeClient, type RangeAnswer } from '../net/range-client.js'
import { isDigest, sha256Digest, type Digest } from '../oci/digest.js'
import { MAX_MANIFEST_SIZE, parseManifest } from '../oci/mediatype.js'
import { contentRange, type ByteRange } from '../oci/range.js'
import type { SignalOptions } from '../util/abort.js'
import type { ClusterKey } from '../net/cluster-key.js'
import { AUTH_HEADER, signRequest, verifyAnswer } from '../protocol/peer-auth.js'
import { FIRST_PULL_PATH, INFOHASH_HEADER, METAINFO_PATH, PEER_REQUEST_HEADER, PIECES_PATH, UPSTREAM_REFUSED_HEADER, WIRE_PORT_HEADER } from '../protocol/peer-api.js'
import { wholeSize, type FirstPullRequest, type SourceBody } from '../upstream/pull-source.js'
import { UpstreamRefusedError } from '../upstream/tokens.js'
import type { PieceFetcher } from '../swarm/http-pieces.js'
import { peerKey, type PeerAddress } from '../routing/router.js'
import { decodeMetainfo, MAX_METAINFO_BYTES, type Metainfo } from '../swarm/metainfo.js'
import { ShoalError } from '../util/errors.js'
import type { BufferPool } from '../util/buffer-pool.js'

export class PeerRequestError extends ShoalError {
  constructor(peer: PeerAddress, what: string, why: string, options?: ErrorOptions) {
    super(`peer ${peerKey(peer)} ${what}: ${why}`, options)
  }
}

/** A peer's answer that does not carry a valid tag of the cluster key: it is not a node of this cluster. */
export class PeerUnauthenticatedError extends PeerRequestError {
  constructor(peer: PeerAddress, what: string) {
    super(peer, what, 'answer not signed with the cluster key')
  }
}

/** What a peer says of a blob's torrent: `metainfo` only from a node that holds the blob. */
export interface PeerMetainfo {
  infoHash: string
  wirePort: number
  metainfo?: Metainfo
}

export interface PeerManifest {
  digest: Digest
  mediaType: string
  bytes: Buffer
}

/**
 * Requests to other nodes' registry API. Every call takes a signal that bounds it. With a
 * cluster key, requests are signed and a 2xx answer counts only if the peer signed it too.
 */
export class PeerClient implements PieceFetcher {
  private readonly http = new HttpClient()
  private readonly ranges = new RangeClient()

  /** `pieces`: whole pieces are fetched into its buffers (the swarm gives them back once sent on). */
  constructor(private readonly key?: ClusterKey, private readonly pieces?: BufferPool) {}

  start(): void {}

  /** Closes the connections kept to peers. */
  stop(): void {
    this.http.close()
    this.ranges.close()
  }

  async statBlob(peer: PeerAddress, blob: { name: string; digest: Digest }, options: SignalOptions = {}): Promise<number | undefined> {
    const { name, digest } = blob
    const response = await this.request(peer, `/v2/${name}/blobs/${digest}`, { method: 'HEAD', signal: options.signal })
    response.discard()
    if (response.status === 404) return undefined
    if (response.status !== 200) throw new PeerRequestError(peer, `HEAD ${digest}`, `status ${response.status}`)
    const size = Number(response.header('content-length'))
    if (!Number.isSafeInteger(size) || size < 0) throw new PeerRequestError(peer, `HEAD ${digest}`, 'no Content-Length')
    return size
  }

  /** The body of a blob of `size` bytes or of a range of it; `undefined` if the peer does not have it. */
  async openBlob(peer: PeerAddress, blob: { name: string; digest: Digest; size: number; range?: ByteRange | undefined }, options: SignalOptions = {}): Promise<Readable | undefined> {
    const { name, digest, size, range } = blob
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end}` } : {}
    const response = await this.request(peer, `/v2/${name}/blobs/${digest}`, { signal: options.signal, headers })
    if (response.status === 404) {
      response.discard()
      return undefined
    }
    const expectedStatus = range ? 206 : 200
    if (response.status !== expectedStatus) {
      response.discard()
      throw new PeerRequestError(peer, `GET ${digest}`, `status ${response.status}`)
    }
    if (range && response.header('content-range') !== contentRange(range, size)) {
      response.discard()
      throw new PeerRequestError(peer, `GET ${digest}`, `unexpected Content-Range ${response.header('content-range')}`)
    }
    return response.body
  }

  /**
   * `length` bytes of a blob at `start`, for a whole-piece request of the swarm, read into one
   * buffer. The swarm verifies them (SHA-1) before it keeps them; this only checks the framing.
   */
  async fetchPiece(peer: PeerAddress, piece: { digest: Digest; start: number; length: number }, options: SignalOptions & { onBytes?: () => void } = {}): Promise<Buffer> {
    const { digest, start, length } = piece
    const what = `piece range ${start}+${length} of ${digest}`
    const path = `${PIECES_PATH}${digest}`
    const signed = this.key && signRequest(this.key, 'GET', path)
    const into = this.pieces?.acquire(length) ?? Buffer.allocUnsafe(length)
    const headers = { [PEER_REQUEST_HEADER]: '1', ...(signed ? { [AUTH_HEADER]: signed.header } : {}), range: `bytes=${start}-${start + length - 1}` }
    let answer: RangeAnswer
    try {
      answer = await this.ranges.get({ host: peer.host, port: peer.port, path, headers, into, signal: options.signal, onBytes: options.onBytes })
    } catch (err) {
      if (options.signal?.aborted) throw err
      throw new PeerRequestError(peer, what, 'unreadable answer', { cause: err })
    }
    if (answer.status !== 206) throw new PeerRequestError(peer, what, `status ${answer.status}`)
    if (this.key && signed && !verifyAnswer(this.key, signed.nonce, answer.status, answer.header)) throw new PeerUnauthenticatedError(peer, `GET ${path}`)
    if (!answer.header('content-range')?.startsWith(`bytes ${start}-${start + length - 1}/`) || !answer.filled) {
      throw new PeerRequestError(peer, what, `unexpected Content-Range ${answer.header('content-range')} or length ${answer.header('content-length')}`)
    }
    return into
  }

  /** A manifest by tag or digest, checked against the digest the peer names. */
  async fetchManifest(peer: PeerAddress, manifest: { name: string; reference: string; registry?: string | undefined }, options: SignalOptions = {}): Promise<PeerManifest | undefined> {
    const { name, reference, registry } = manifest
    const query = registry ? `?ns=${encodeURIComponent(registry)}` : ''
    const response = await this.request(peer, `/v2/${name}/manifests/${reference}${query}`, { signal: options.signal })
    if (response.status !== 200) response.discard()
    if (response.status === 404) return undefined
    if (response.status !== 200) throw new PeerRequestError(peer, `GET manifest ${reference}`, `status ${response.status}`)
    const bytes = await limitedBody(response, MAX_MANIFEST_SIZE, peer, reference)
    const digest = sha256Digest(bytes)
    const named = response.header('docker-content-digest')
    if ((named && named !== digest) || (isDigest(reference) && reference !== digest)) {
      throw new PeerRequestError(peer, `GET manifest ${reference}`, 'content does not match its digest')
    }
    const parsed = parseManifest(bytes)
    if (!parsed) throw new PeerRequestError(peer, `GET manifest ${reference}`, 'not a manifest')
    return { digest, mediaType: parsed.mediaType, bytes }
  }

  /**
   * A holder's metainfo of a blob and its wire port; from a node still downloading it, only the
   * infohash it downloads and its wire port. Undefined if it can give neither now.
   */
  async fetchMetainfo(peer: PeerAddress, digest: Digest, options: SignalOptions = {}): Promise<PeerMetainfo | undefined> {
    const response = await this.request(peer, `${METAINFO_PATH}${digest}`, { signal: options.signal })
    if (response.status !== 200) response.discard()
    if (response.status === 404 || response.status === 503) return undefined
    if (response.status !== 200 && response.status !== 202) throw new PeerRequestError(peer, `metainfo ${digest}`, `status ${response.status}`)
    const wirePort = Number(response.header(WIRE_PORT_HEADER))
    if (!Number.isInteger(wirePort) || wirePort <= 0 || wirePort > 65535) throw new PeerRequestError(peer, `metainfo ${digest}`, `no ${WIRE_PORT_HEADER}`)
    const infoHash = response.header(INFOHASH_HEADER) ?? ''
    if (response.status === 202) {
      if (!/^[0-9a-f]{40}$/.test(infoHash)) throw new PeerRequestError(peer, `metainfo ${digest}`, `no ${INFOHASH_HEADER}`)
      return { infoHash, wirePort }
    }
    const metainfo = decodeMetainfo(await limitedBody(response, MAX_METAINFO_BYTES, peer, digest), digest)
    if (infoHash && infoHash !== metainfo.infoHash) throw new PeerRequestError(peer, `metainfo ${digest}`, `body does not match its ${INFOHASH_HEADER}`)
    return { infoHash: metainfo.infoHash, wirePort, metainfo }
  }

  /** A first pull of the request as `peer` pulls it, from byte `from` on. */
  async openFirstPull(peer: PeerAddress, pull: FirstPullRequest, from: number, options: SignalOptions = {}): Promise<SourceBody> {
    const path = `${FIRST_PULL_PATH}${pull.kind}/${pull.digest}?ns=${encodeURIComponent(pull.registry)}&repo=${encodeURIComponent(pull.repository)}`
    const what = `first pull of ${pull.digest}${from > 0 ? ` from byte ${from}` : ''}`
    const response = await this.request(peer, path, { signal: options.signal, headers: from > 0 ? { range: `bytes=${from}-` } : {} })
    if (response.status === 403 && response.header(UPSTREAM_REFUSED_HEADER)) {
      response.discard()
      throw new UpstreamRefusedError(403, `upstream refuses ${pull.digest} to an anonymous client (as ${peerKey(peer)} found)`)
    }
    const size = wholeSize(response.status, response.header('content-length'), response.header('content-range'), from)
    if (size === undefined) {
      response.discard()
      throw new PeerRequestError(peer, what, `status ${response.status}${response.status < 300 ? ` with Content-Range ${response.header('content-range')}` : ''}`)
    }
    return { size, body: response.body, server: peerKey(peer) }
  }

  private async request(peer: PeerAddress, path: string, init: { method?: string; signal?: AbortSignal | undefined; headers?: Record<string, string> }): Promise<HttpAnswer> {
    const method = init.method ?? 'GET'
    const signed = this.key && signRequest(this.key, method, path)
    const answer = await this.http.send({ host: peer.host, port: peer.port, path, method, signal: init.signal,
      headers: { [PEER_REQUEST_HEADER]: '1', ...(signed ? { [AUTH_HEADER]: signed.header } : {}), ...init.headers } })
    const success = answer.status >= 200 && answer.status < 300
    if (this.key && signed && success && !verifyAnswer(this.key, signed.nonce, answer.status, answer.header)) {
      answer.discard()
      throw new PeerUnauthenticatedError(peer, `${method} ${path}`)
    }
    return answer
  }
}

async function limitedBody(response: HttpAnswer, limit: number, peer: PeerAddress, what: string): Promise<Buffer> {
  const declared = Number(response.header('content-length') ?? 0)
  if (declared > limit) {
    response.discard()
    throw new PeerRequestError(peer, what, `answer larger than ${limit} bytes`)
  }
  try {
    return await collect(response.body, limit)
  } catch (err) {
    throw new PeerRequestError(peer, what, 'unreadable answer', { cause: err })
  }
}

