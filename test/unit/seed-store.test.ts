import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { PieceCache, PieceVerificationError, seedStoreClass } from '../../src/swarm/seed-store.js'
import { blobWithMetainfo, pieceOf } from '../support/swarm-fixtures.js'

const PIECE = 256 * 1024

function get(store: { get(index: number, opts: unknown, cb: (err: Error | null, value?: Buffer) => void): void }, index: number, opts: unknown = null): Promise<Buffer> {
  return new Promise((resolve, reject) => store.get(index, opts, (err, value) => (err ? reject(err) : resolve(value!))))
}

describe('seed store', () => {
  it('serves verified pieces and parts of them from the content store, and refuses writes', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(2 * PIECE + 3)
    const content = new MemoryContentProvider()
    content.addBlob(bytes)
    const Store = seedStoreClass({ metainfo, content, cache: new PieceCache(4 * PIECE), onCorruptPiece: () => assert.fail('not corrupt') })
    const store = new Store()
    assert.ok((await get(store, 2)).equals(pieceOf(bytes, metainfo, 2)))
    assert.ok((await get(store, 0, { offset: 100, length: 16 })).equals(bytes.subarray(100, 116)))
    await assert.rejects(get(store, 3), /no piece 3/)
    await assert.rejects(new Promise((resolve, reject) => store.put(0, Buffer.alloc(1), (err) => (err ? reject(err) : resolve(undefined)))), /read-only/)
  })

  it('withholds a piece whose local bytes do not match the metainfo', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(2 * PIECE)
    const other = await blobWithMetainfo(2 * PIECE)
    const content = new MemoryContentProvider()
    const damaged = Buffer.concat([bytes.subarray(0, PIECE), other.bytes.subarray(PIECE)])
    const damagedDigest = content.addBlob(damaged)
    const corrupt: number[] = []
    const Store = seedStoreClass({ metainfo: { ...metainfo, digest: damagedDigest }, content, cache: new PieceCache(4 * PIECE), onCorruptPiece: (index) => corrupt.push(index) })
    const store = new Store()
    assert.ok((await get(store, 0)).equals(pieceOf(bytes, metainfo, 0)))
    await assert.rejects(get(store, 1), PieceVerificationError)
    assert.deepEqual(corrupt, [1])
  })
})
