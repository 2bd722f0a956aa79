import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { buildMetainfo, hashBlob, pieceCount } from '../swarm/metainfo.js'
import { ShoalError } from '../util/errors.js'

export class NotARegularFileError extends ShoalError {
  constructor(path: string, why: string) {
    super(`${path}: ${why}`)
  }
}

/** `shoal metainfo <file>`: the deterministic metainfo shoal computes for these bytes. */
export async function runMetainfo(path: string, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const info = await stat(path)
  if (!info.isFile()) throw new NotARegularFileError(path, 'not a regular file')
  if (info.size === 0) throw new NotARegularFileError(path, 'empty; empty blobs are never swarmed')
  const { digest, pieces } = await hashBlob(info.size, createReadStream(path, { highWaterMark: 1 << 20 }), path)
  const metainfo = buildMetainfo(digest, info.size, pieces)
  out.write([
    `digest: ${metainfo.digest}`,
    `size: ${metainfo.length}`,
    `piece length: ${metainfo.pieceLength}`,
    `pieces: ${pieceCount(metainfo)}`,
    `infohash: ${metainfo.infoHash}`,
  ].join('\n') + '\n')
}
