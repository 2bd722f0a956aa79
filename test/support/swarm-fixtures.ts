import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { sha256Digest } from '../../src/oci/digest.js'
import { Download } from '../../src/swarm/download.js'
import { DownloadFile, downloadPath } from '../../src/swarm/download-store.js'
import { computeMetainfo, type Metainfo } from '../../src/swarm/metainfo.js'
import type { Clock } from '../../src/util/clock.js'

/** A random blob of `size` bytes and its metainfo (256 KiB pieces below 64 MiB). */
export async function blobWithMetainfo(size: number): Promise<{ bytes: Buffer; metainfo: Metainfo }> {
  const bytes = randomBytes(size)
  return { bytes, metainfo: await computeMetainfo(sha256Digest(bytes), size, Readable.from([bytes])) }
}

/** A Download over a real file in a temp dir, with helpers to store and verify pieces as the swarm would. */
export async function downloadOf(bytes: Buffer, metainfo: Metainfo, options: { clock?: Clock; onCritical?: (piece: number) => void; onUrgent?: (piece: number) => void; pool?: { acquire(length: number): Buffer | undefined; release(bytes: Buffer): void } } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-download-'))
  const file = new DownloadFile(downloadPath(dir, metainfo), metainfo)
  const download = new Download(metainfo, { file, ...options })
  return {
    download,
    async deliver(piece: number, data = pieceOf(bytes, metainfo, piece)): Promise<void> {
      await file.write(piece, data)
      download.markVerified(piece)
    },
    /** As the swarm stores a verified piece: through the chunk store, so the download keeps it in memory. */
    async store(piece: number, data: Buffer): Promise<void> {
      const Store = file.storeClass()
      await new Promise<void>((resolve, reject) => new Store().put(piece, data, (err) => (err ? reject(err) : resolve())))
      download.markVerified(piece)
    },
    async cleanup(): Promise<void> {
      await file.remove()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export function pieceOf(bytes: Buffer, metainfo: Metainfo, piece: number): Buffer {
  return bytes.subarray(piece * metainfo.pieceLength, Math.min((piece + 1) * metainfo.pieceLength, bytes.length))
}
