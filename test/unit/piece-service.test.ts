import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MemoryContentProvider } from '../../src/content/memory.js'
import { collect } from '../../src/content/read.js'
import { PieceService } from '../../src/mirror/piece-service.js'
import { BufferPool } from '../../src/util/buffer-pool.js'
import { TransferLedger } from '../../src/observe/ledger.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { BlobUnknownError } from '../../src/oci/errors.js'
import type { Download } from '../../src/swarm/download.js'
import type { Swarm } from '../../src/swarm/swarm.js'
import { blobWithMetainfo, downloadOf } from '../support/swarm-fixtures.js'

function service(content: MemoryContentProvider, downloading?: Download, buffers?: BufferPool): PieceService {
  const swarm = { downloading: () => downloading, uploadThrottle: () => undefined } as unknown as Swarm
  return new PieceService({ content, swarm, ledger: new TransferLedger(), metrics: createMetricsRegistry().metrics, ...(buffers ? { buffers } : {}) })
}

describe('whole pieces for peers', () => {
  it('serves any range of a blob in the content store, counted as uploaded', async () => {
    const content = new MemoryContentProvider()
    const { bytes } = await blobWithMetainfo(300_000)
    const digest = content.addBlob(bytes)
    const pieces = service(content)
    const answer = await pieces.open(digest, 'bytes=1000-263143', '127.0.0.9')
    assert.deepEqual({ size: answer.size, range: answer.range }, { size: 300_000, range: { start: 1000, end: 263143 } })
    assert.ok((await collect(answer.body, 1 << 20)).equals(bytes.subarray(1000, 263144)))
  })

  it('serves a download in progress only where every piece of the range is verified', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(600_000)
    const transfer = await downloadOf(bytes, metainfo)
    try {
      await transfer.deliver(0)
      const pieces = service(new MemoryContentProvider(), transfer.download)
      const inFirst = await pieces.open(metainfo.digest, `bytes=0-${metainfo.pieceLength - 1}`, '127.0.0.9')
      assert.ok((await collect(inFirst.body, 1 << 20)).equals(bytes.subarray(0, metainfo.pieceLength)))
      await assert.rejects(pieces.open(metainfo.digest, `bytes=0-${metainfo.pieceLength}`, '127.0.0.9'), BlobUnknownError)
      await assert.rejects(pieces.open(metainfo.digest, undefined, '127.0.0.9'), BlobUnknownError)
    } finally {
      await transfer.cleanup()
    }
  })

  it('serves a verified range of a download in progress without asking the content store (containerd answers each miss over gRPC)', async () => {
    const { bytes, metainfo } = await blobWithMetainfo(600_000)
    const transfer = await downloadOf(bytes, metainfo)
    const content = new MemoryContentProvider()
    let asked = 0
    const stat = content.stat.bind(content)
    content.stat = (...args) => {
      asked++
      return stat(...args)
    }
    try {
      await transfer.deliver(0)
      const buffers = new BufferPool()
      const pieces = service(content, transfer.download, buffers)
      for (let i = 0; i < 3; i++) {
        const answer = await pieces.open(metainfo.digest, `bytes=0-${metainfo.pieceLength - 1}`, '127.0.0.9')
        assert.ok((await collect(answer.body, 1 << 20)).equals(bytes.subarray(0, metainfo.pieceLength)))
        assert.equal(buffers.leasedBytes, metainfo.pieceLength, 'the piece is read into a buffer of the node\'s pool (no fresh memory per piece served)')
        answer.release()
        assert.equal(buffers.leasedBytes, 0)
      }
      assert.equal(asked, 0)
      // A range the download lacks: the content store is asked (the blob may be committed there).
      await assert.rejects(pieces.open(metainfo.digest, `bytes=${metainfo.pieceLength}-${2 * metainfo.pieceLength - 1}`, '127.0.0.9'), BlobUnknownError)
      assert.equal(asked, 1)
      content.addBlob(bytes)
      const committed = await pieces.open(metainfo.digest, `bytes=${metainfo.pieceLength}-${2 * metainfo.pieceLength - 1}`, '127.0.0.9')
      assert.ok((await collect(committed.body, 1 << 20)).equals(bytes.subarray(metainfo.pieceLength, 2 * metainfo.pieceLength)))
    } finally {
      await transfer.cleanup()
    }
  })

  it('answers 404 for a blob it neither holds nor downloads', async () => {
    const { metainfo } = await blobWithMetainfo(1000)
    await assert.rejects(service(new MemoryContentProvider()).open(metainfo.digest, 'bytes=0-9', '127.0.0.9'), BlobUnknownError)
  })
})
