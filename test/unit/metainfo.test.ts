import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import bencode from 'bencode'
import createTorrent from 'create-torrent'
import { sha256Digest, type Digest } from '../../src/oci/digest.js'
import { computeMetainfo, ContentMismatchError, decodeMetainfo, InvalidMetainfoError, pieceCount, pieceLengthFor } from '../../src/swarm/metainfo.js'
import { patternBytes } from '../support/images.js'

const VECTOR_DIGEST = 'sha256:fd0e5ca77027c16499d9b2898bfdde0c593c994cb77be3ffe3b8b209ca68760d' as Digest

async function* chunked(bytes: Buffer, size: number): AsyncIterable<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size)
}

describe('deterministic metainfo', () => {
  it('matches the check value of docs/design.md', async () => {
    const bytes = patternBytes(3_158_073)
    assert.equal(sha256Digest(bytes), VECTOR_DIGEST)
    const metainfo = await computeMetainfo(VECTOR_DIGEST, bytes.length, chunked(bytes, 65_537))
    assert.equal(metainfo.pieceLength, 262_144)
    assert.equal(pieceCount(metainfo), 13)
    assert.equal(metainfo.pieces.length, 13 * 20)
    assert.equal(metainfo.infoHash, 'f75af0e9016c026cd54466f00d1539a1be16062b')
  })

  it('does not depend on how the bytes are chunked', async () => {
    const bytes = patternBytes(1_000_003, 13, 5)
    const digest = sha256Digest(bytes)
    const a = await computeMetainfo(digest, bytes.length, chunked(bytes, 1))
    const b = await computeMetainfo(digest, bytes.length, chunked(bytes, 1 << 20))
    assert.equal(a.infoHash, b.infoHash)
  })

  it('agrees with create-torrent given the same four fields', async () => {
    const bytes = patternBytes(700_001, 3, 1)
    const digest = sha256Digest(bytes)
    const ours = await computeMetainfo(digest, bytes.length, chunked(bytes, 4096))
    const file = Object.assign(bytes, { name: digest.replace(':', '-') })
    const theirs = await new Promise<Uint8Array>((resolve, reject) =>
      createTorrent(file, { name: digest.replace(':', '-'), pieceLength: pieceLengthFor(bytes.length), announceList: [], createdBy: undefined, creationDate: undefined, urlList: [] },
        (err: Error | null, torrent: Uint8Array) => (err ? reject(err) : resolve(torrent))))
    const info = (bencode.decode(theirs) as { info: Record<string, unknown> }).info
    assert.equal(decodeMetainfo(bencode.encode({ info }), digest).infoHash, ours.infoHash)
  })

  it('follows the piece-length rule at its boundaries', () => {
    assert.equal(pieceLengthFor(1), 256 * 1024)
    assert.equal(pieceLengthFor(64 * 1024 * 1024), 256 * 1024)
    assert.equal(pieceLengthFor(64 * 1024 * 1024 + 1), 1024 * 1024)
    assert.equal(pieceLengthFor(1024 ** 3), 1024 * 1024)
    assert.equal(pieceLengthFor(1024 ** 3 + 1), 4 * 1024 * 1024)
  })

  it('refuses content that does not match its digest or size', async () => {
    const bytes = patternBytes(300_000)
    const digest = sha256Digest(bytes)
    const corrupt = Buffer.from(bytes)
    corrupt[12345] ^= 1
    await assert.rejects(computeMetainfo(digest, bytes.length, chunked(corrupt, 4096)), ContentMismatchError)
    await assert.rejects(computeMetainfo(digest, bytes.length + 1, chunked(bytes, 4096)), ContentMismatchError)
    await assert.rejects(computeMetainfo(digest, bytes.length - 1, chunked(bytes, 4096)), ContentMismatchError)
    await assert.rejects(computeMetainfo(digest, 0, chunked(Buffer.alloc(0), 1)), ContentMismatchError)
  })

  it('round-trips through its bencoded form', async () => {
    const bytes = patternBytes(3_158_073)
    const metainfo = await computeMetainfo(VECTOR_DIGEST, bytes.length, chunked(bytes, 1 << 16))
    assert.deepEqual(decodeMetainfo(metainfo.torrent, VECTOR_DIGEST), metainfo)
  })

  it('refuses anything but the pinned format', async () => {
    const bytes = patternBytes(3_158_073)
    const good = await computeMetainfo(VECTOR_DIGEST, bytes.length, chunked(bytes, 1 << 16))
    const info = { length: good.length, name: Buffer.from('sha256-fd0e5ca77027c16499d9b2898bfdde0c593c994cb77be3ffe3b8b209ca68760d'), 'piece length': good.pieceLength, pieces: good.pieces }
    const variants: [string, unknown][] = [
      ['private key', { info: { ...info, private: 0 } }],
      ['wrong name', { info: { ...info, name: Buffer.from('other') } }],
      ['wrong piece length', { info: { ...info, 'piece length': 1 << 20 } }],
      ['short pieces', { info: { ...info, pieces: good.pieces.subarray(20) } }],
      ['negative length', { info: { ...info, length: -1 } }],
      ['no info', { announce: 'x' }],
      ['info is a list', { info: [1, 2] }],
    ]
    for (const [label, value] of variants) assert.throws(() => decodeMetainfo(bencode.encode(value), VECTOR_DIGEST), InvalidMetainfoError, label)
    for (const garbage of [Buffer.from('d4:infod'), Buffer.from('i99999999999999999999999e'), Buffer.from([0xff, 0x00]), Buffer.alloc(0), Buffer.from('l'.repeat(100_000))]) {
      assert.throws(() => decodeMetainfo(garbage, VECTOR_DIGEST), InvalidMetainfoError)
    }
  })
})
