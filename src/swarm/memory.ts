import { createHash } from 'node:crypto'
import type { Transform } from 'node:stream'
import type { ContentProvider } from '../content/provider.js'
import { collect } from '../content/read.js'
import type { DialAddress } from '../net/address.js'
import type { Digest } from '../oci/digest.js'
import { Download, DownloadFailedError } from './download.js'
import { DownloadFile, downloadPath } from './download-store.js'
import { pieceCount, pieceHash, type Metainfo } from './metainfo.js'
import type { Swarm } from './swarm.js'

/** In-process stand-in for the BitTorrent network between MemorySwarms, by wire address. */
export class MemorySwarmNetwork {
  readonly swarms = new Map<string, MemorySwarm>()
}

/**
 * A Swarm without sockets, for unit tests of what sits above it: pieces are copied from the
 * seeds and downloads of the MemorySwarms at the given peer addresses, SHA-1 verified like
 * the real one, into a real download file.
 */
export class MemorySwarm implements Swarm {
  private readonly seeds = new Map<Digest, Metainfo>()
  private readonly downloads = new Map<Digest, Download>()

  /** `address` may be a getter: it is read when the swarm starts (e.g. once a server has its port). */
  constructor(private readonly components: { content: ContentProvider; network: MemorySwarmNetwork }, private readonly init: { address: DialAddress; dataDir: string }) {}

  /** Joins the network under the address; a swarm that is not started cannot be fetched from. */
  start(): void {
    this.components.network.swarms.set(this.key(), this)
  }

  stop(): void {
    if (this.components.network.swarms.get(this.key()) === this) this.components.network.swarms.delete(this.key())
  }

  private key(): string {
    return `${this.init.address.host}:${this.init.address.port}`
  }

  async seed(metainfo: Metainfo): Promise<void> {
    this.seeds.set(metainfo.digest, metainfo)
  }

  async fetch(metainfo: Metainfo, peers: DialAddress[]): Promise<Download> {
    let download = this.downloads.get(metainfo.digest)
    if (!download) {
      download = new Download(metainfo, { file: new DownloadFile(downloadPath(this.init.dataDir, metainfo), metainfo) })
      this.downloads.set(metainfo.digest, download)
    }
    void this.pull(download, peers)
    return download
  }

  downloading(digest: Digest): Download | undefined {
    return this.downloads.get(digest)
  }

  wirePort(): number {
    return this.init.address.port
  }

  uploadThrottle(): Transform | undefined {
    return undefined
  }

  /** A verified piece this swarm can give, or undefined. */
  async piece(digest: Digest, index: number): Promise<Buffer | undefined> {
    const seeded = this.seeds.get(digest)
    if (seeded) {
      const start = index * seeded.pieceLength
      const end = Math.min(start + seeded.pieceLength, seeded.length) - 1
      return collect(await this.components.content.open(digest, { range: { start, end } }), seeded.pieceLength)
    }
    const download = this.downloads.get(digest)
    if (!download?.isVerified(index)) return undefined
    const start = index * download.metainfo.pieceLength
    return download.read(start, Math.min(download.metainfo.pieceLength, download.metainfo.length - start))
  }

  private async pull(download: Download, peers: DialAddress[]): Promise<void> {
    const sources = peers.map((peer) => this.components.network.swarms.get(`${peer.host}:${peer.port}`)).filter((swarm) => swarm !== undefined)
    const { metainfo } = download
    try {
      for (let index = 0; index < pieceCount(metainfo); index++) {
        if (download.isVerified(index)) continue
        for (const source of sources) {
          const piece = await source.piece(metainfo.digest, index)
          if (!piece || !createHash('sha1').update(piece).digest().equals(pieceHash(metainfo, index))) continue
          await download.file.write(index, piece)
          download.markVerified(index)
          break
        }
      }
    } catch (err) {
      download.fail(new DownloadFailedError(metainfo.digest, 'a piece could not be stored', { cause: err }))
    }
  }
}
