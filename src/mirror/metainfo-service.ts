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
 * Answers peers asking for a blob's metainfo: for blobs this node holds (it starts seeding
 * them first, so the peer can connect right away) and for blobs it is downloading.
 */
export class MetainfoService {
  constructor(private readonly components: { content: ContentProvider; swarm: Swarm; metainfo: MetainfoCache; logger: Logger },
    private readonly init: { waitMs?: number } = {}) {}

  async answer(digest: Digest, options: SignalOptions = {}): Promise<{ metainfo: Metainfo; wirePort: number } | undefined> {
    const signal = options.signal ?? new AbortController().signal
    const { content, swarm, metainfo } = this.components
    const downloading = swarm.downloading(digest)
    if (downloading) return { metainfo: downloading.metainfo, wirePort: swarm.wirePort() }
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
    return { metainfo: known, wirePort: swarm.wirePort() }
  }
}
