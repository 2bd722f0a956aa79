import type { Logger } from 'pino'
import type { ContentProvider } from '../content/provider.js'
import type { Digest } from '../oci/digest.js'
import { UnavailableError } from '../oci/errors.js'
import type { Metainfo } from '../swarm/metainfo.js'
import type { MetainfoCache } from '../swarm/metainfo-cache.js'
import type { Swarm } from '../swarm/swarm.js'
import type { SignalOptions } from '../util/abort.js'

/** How long a peer's metainfo request may wait for this node to hash a blob before a 503. */
export const DEFAULT_METAINFO_WAIT_MS = 2_000

/**
 * What this node tells a peer asking for a blob's metainfo. For a blob it holds: the metainfo
 * (computed here from the blob). For one it is still downloading: only the infohash it
 * downloads and its wire port, never the metainfo, which it learnt from a peer and cannot
 * vouch for until the whole blob hashed to its digest. A peer that already has metainfo it
 * trusts joins this node's swarm when the infohashes match.
 */
export type MetainfoAnswer =
  | { kind: 'verified'; metainfo: Metainfo; wirePort: number }
  | { kind: 'downloading'; infoHash: string; wirePort: number }

/** Answers peers asking for a blob's metainfo; this node starts seeding a blob it holds first, so the peer can connect right away. */
export class MetainfoService {
  constructor(private readonly components: { content: ContentProvider; swarm: Swarm; metainfo: MetainfoCache; logger: Logger },
    private readonly init: { waitMs?: number } = {}) {}

  async answer(digest: Digest, options: SignalOptions = {}): Promise<MetainfoAnswer | undefined> {
    const signal = options.signal ?? new AbortController().signal
    const { content, swarm, metainfo } = this.components
    const downloading = swarm.downloading(digest)
    if (downloading?.digestMatches) return { kind: 'verified', metainfo: downloading.metainfo, wirePort: swarm.wirePort() }
    if (downloading) return { kind: 'downloading', infoHash: downloading.metainfo.infoHash, wirePort: swarm.wirePort() }
    const info = await content.stat(digest, { signal })
    if (!info || info.size === 0 || !digest.startsWith('sha256:')) return undefined
    const timeout = AbortSignal.timeout(this.init.waitMs ?? DEFAULT_METAINFO_WAIT_MS)
    let known: Metainfo
    try {
      known = await metainfo.obtain(digest, { signal: AbortSignal.any([signal, timeout]) })
    } catch (err) {
      if (timeout.aborted && !signal.aborted) throw new UnavailableError(`metainfo of ${digest} is being computed; ask again shortly`)
      throw err
    }
    await swarm.seed(known, { signal })
    return { kind: 'verified', metainfo: known, wirePort: swarm.wirePort() }
  }
}
