import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs'
import { open, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { digestHex } from '../oci/digest.js'
import { readExactly } from '../util/read-exactly.js'
import type { Metainfo } from './metainfo.js'

type Callback<T> = (err: Error | null, value?: T) => void

/** `<data-dir>/downloads/<hex>.partial`: where a blob being fetched through the swarm is assembled. */
export function downloadPath(dataDir: string, metainfo: Metainfo): string {
  return join(dataDir, 'downloads', `${digestHex(metainfo.digest)}.partial`)
}

/**
 * A file-backed chunk store for a blob being downloaded. webtorrent writes verified pieces
 * here; shoal streams them to containerd straight from the file, in large reads.
 */
export class DownloadFile {
  private handle: FileHandle | undefined
  private opening: Promise<FileHandle> | undefined
  private onStored: (index: number, data: Buffer) => void = () => {}

  /** `listener` is called with each verified piece once it is written, before webtorrent marks it verified. */
  onPieceStored(listener: (index: number, data: Buffer) => void): void {
    this.onStored = listener
  }

  constructor(readonly path: string, readonly metainfo: Metainfo) {
    mkdirSync(join(path, '..'), { recursive: true })
    // A stale file from a crashed run would hold unverified bytes: start empty.
    closeSync(openSync(path, 'w'))
  }

  private file(): Promise<FileHandle> {
    if (this.handle) return Promise.resolve(this.handle)
    this.opening ??= open(this.path, 'r+').then((handle) => (this.handle = handle))
    return this.opening
  }

  async write(index: number, data: Buffer): Promise<void> {
    const file = await this.file()
    await file.write(data, 0, data.length, index * this.metainfo.pieceLength)
  }

  /** Reads `length` bytes at `position` (into `into` when it is long enough); the caller only asks for verified pieces. */
  async read(position: number, length: number, into?: Buffer): Promise<Buffer> {
    return readExactly(await this.file(), position, length, this.path, into)
  }

  async remove(): Promise<void> {
    const handle = this.handle
    this.handle = undefined
    this.opening = undefined
    await handle?.close()
    await rm(this.path, { force: true })
  }

  /** The chunk-store class webtorrent instantiates for this torrent. */
  storeClass() {
    const file = this
    const { pieceLength, length } = this.metainfo
    return class DownloadStore {
      readonly chunkLength = pieceLength
      readonly length = length

      put(index: number, buffer: Buffer, cb: Callback<void>): void {
        file.write(index, buffer).then(() => {
          file.onStored(index, buffer)
          cb(null)
        }, (err: Error) => cb(err))
      }

      get(index: number, opts: { offset?: number; length?: number } | Callback<Buffer> | null, cb?: Callback<Buffer>): void {
        const callback = (typeof opts === 'function' ? opts : cb) as Callback<Buffer>
        const range = typeof opts === 'function' || !opts ? {} : opts
        const pieceStart = index * pieceLength
        const pieceSize = Math.min(pieceLength, length - pieceStart)
        const offset = range.offset ?? 0
        file.read(pieceStart + offset, range.length ?? pieceSize - offset).then((data) => callback(null, data), (err: Error) => callback(err))
      }

      close(cb?: Callback<void>): void {
        queueMicrotask(() => cb?.(null))
      }

      destroy(cb?: Callback<void>): void {
        queueMicrotask(() => cb?.(null))
      }
    }
  }
}

/** Removes partial downloads left by a previous run. */
export function clearDownloads(dataDir: string): void {
  rmSync(join(dataDir, 'downloads'), { recursive: true, force: true })
}
