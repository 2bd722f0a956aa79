import { Readable } from 'node:stream'
import type { Digest } from '../oci/digest.js'
import type { ByteRange } from '../oci/range.js'
import { SwarmBlobStream } from '../swarm/blob-stream.js'
import { abortable } from '../util/abort.js'
import type { Deadline } from '../util/deadline.js'
import { ShoalError } from '../util/errors.js'
import type { HolderPool } from './holder-pool.js'
import type { HttpTransfers } from './http-transfer.js'
import type { PeerRoute } from './plan.js'
import type { SwarmJoins } from './swarm-join.js'

/** A route gave nothing in its time; the next one in the plan is tried. */
export class RouteFailedError extends ShoalError {
  constructor(readonly route: PeerRoute, why: string, options: ErrorOptions = {}) {
    super(`${route}: ${why}`, options)
  }
}

export interface RouteRequest {
  name: string
  digest: Digest
  deadline: Deadline
  holders: HolderPool
  size: number
  /** What the client asked for; the whole blob if it did not say. */
  range: ByteRange
}

export interface PeerRoutesComponents {
  http: HttpTransfers
  joins: SwarmJoins
}

export interface PeerRoutesInit {
  stallTimeoutMs: number
  /** With peers nobody vouches for, a range's end waits until the whole blob matches its digest. */
  authenticatedPeers?: boolean
}

/** Runs one route of a plan: a body whose first bytes are there, or RouteFailedError. */
export class PeerRoutes {
  constructor(private readonly components: PeerRoutesComponents, private readonly init: PeerRoutesInit) {}

  /** `stepsLeft` counts this route and the fallbacks after it: each keeps a share of the deadline. */
  async run(route: PeerRoute, request: RouteRequest, stepsLeft: number): Promise<{ body: Readable; source: 'peer' | 'swarm' }> {
    const { signal } = request.deadline
    try {
      if (route === 'http-whole') {
        const bytes = await this.components.http.fetchWhole({ ...request, signal }, request.holders, request.size)
        return { body: Readable.from([bytes.subarray(request.range.start, request.range.end + 1)]), source: 'peer' }
      }
      if (route === 'http-stream') return { body: await this.components.http.stream({ ...request, signal }, request.holders, request.size, request.range), source: 'peer' }
      return { body: await this.fromSwarm(request, request.deadline.share(this.init.stallTimeoutMs, stepsLeft)), source: 'swarm' }
    } catch (err) {
      if (signal.aborted || err instanceof RouteFailedError) throw err
      throw new RouteFailedError(route, err instanceof Error ? err.message : String(err), { cause: err })
    }
  }

  /** The swarm's stream of the range once its first piece is verified, all within `budgetMs`. */
  private async fromSwarm(request: RouteRequest, budgetMs: number): Promise<Readable> {
    const step = request.deadline.within(budgetMs, () => new RouteFailedError('swarm', `nothing within ${budgetMs} ms`))
    try {
      const download = await abortable(this.components.joins.join(request.digest, request.holders, request.size), step.signal)
      if (!download) throw new RouteFailedError('swarm', 'no holder gave metainfo in time')
      const stream = new SwarmBlobStream(download, request.range, this.init.stallTimeoutMs, !this.init.authenticatedPeers)
      try {
        await abortable(stream.firstBytesReady(), step.signal)
      } catch (err) {
        stream.destroy()
        throw err
      }
      return stream
    } catch (err) {
      if (request.deadline.signal.aborted) throw request.deadline.signal.reason
      throw err
    } finally {
      step.release()
    }
  }
}
