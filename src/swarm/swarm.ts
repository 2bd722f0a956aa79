import type { Transform } from 'node:stream'
import type { DialAddress } from '../net/address.js'
import type { Digest } from '../oci/digest.js'
import type { Download } from './download.js'
import type { Metainfo } from './metainfo.js'
import type { SignalOptions } from '../util/abort.js'
import type { Service } from '../util/service.js'

/** Sharing blobs with other nodes piece by piece. */
export interface Swarm extends Service {
  /** Makes a blob this node holds available to peers; resolves once they can connect. */
  seed(metainfo: Metainfo, options?: SignalOptions): Promise<void>
  /** Joins the download of a blob (starting it if needed) and connects to these peers. */
  fetch(metainfo: Metainfo, peers: DialAddress[], options?: SignalOptions): Promise<Download>
  /** The download in progress for a digest, whose metainfo later requesters can get from us. */
  downloading(digest: Digest): Download | undefined
  /** The TCP port of the BitTorrent wire, which peers learn from our HTTP API. */
  wirePort(): number
  /** A pass-through that counts against this node's upload limit (HTTP uploads to peers); none without a limit. */
  uploadThrottle(): Transform | undefined
}
