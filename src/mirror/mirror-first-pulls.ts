import type { Logger } from 'pino'
import { collect } from '../content/read.js'
import type { Readable } from 'node:stream'
import { BlobUnknownError, ManifestUnknownError } from '../oci/errors.js'
import { parseRange, type ByteRange } from '../oci/range.js'
import { MAX_MANIFEST_SIZE, parseManifest } from '../oci/mediatype.js'
import { abortable } from '../util/abort.js'
import type { Deadline } from '../util/deadline.js'
import type { FirstPull, FirstPulls } from '../upstream/first-pulls.js'
import type { FirstPullRequest } from '../upstream/pull-source.js'
import { UpstreamRefusedError } from '../upstream/tokens.js'
import { UpstreamUnavailableError } from '../upstream/upstream-source.js'

/** The mirror's side of a first pull: a 404 when it cannot happen, so containerd goes upstream itself at once. */
export class MirrorFirstPulls {
  constructor(private readonly pulls: FirstPulls, private readonly logger: Logger) {}

  /** The pull once its first source answered; `notFound(why)` when upstream refuses or nobody gives it. */
  async open(request: FirstPullRequest, deadline: Deadline, notFound: (why: string) => Error): Promise<FirstPull> {
    try {
      return await abortable(this.pulls.open(request), deadline.signal)
    } catch (err) {
      if (err instanceof UpstreamRefusedError) {
        this.logger.info({ digest: request.digest, registry: request.registry, repository: request.repository, status: err.status }, 'upstream refuses an anonymous pull; containerd goes with its own credentials')
        throw notFound(`upstream refuses it to an anonymous client (${err.message}); containerd asks with its own credentials`)
      }
      if (err instanceof UpstreamUnavailableError) throw notFound(`nobody holds it and the first pull failed: ${err.message}`)
      throw err
    }
  }

  /** A blob (or the `Range` asked of it) as the pull delivers it, verified before its last byte. */
  async blob(request: FirstPullRequest, asked: { rangeHeader: string | undefined; head: boolean; deadline: Deadline }): Promise<{ size: number; range: ByteRange | undefined; body: Readable | undefined; source: 'first-pull' }> {
    const pull = await this.open(request, asked.deadline, (why) => new BlobUnknownError(request.digest, why))
    const range = parseRange(asked.rangeHeader, pull.size)
    return { size: pull.size, range, body: asked.head ? undefined : pull.follow(range, 'containerd'), source: 'first-pull' }
  }

  /** A manifest by digest, pulled whole and verified before it is answered. */
  async manifest(request: FirstPullRequest, deadline: Deadline): Promise<{ digest: FirstPullRequest['digest']; mediaType: string; bytes: Buffer; source: 'first-pull' }> {
    const notFound = (why: string): Error => new ManifestUnknownError(request.digest, why)
    const pull = await this.open(request, deadline, notFound)
    if (pull.size > MAX_MANIFEST_SIZE) throw notFound(`upstream gives ${pull.size} bytes, more than a manifest may have`)
    const bytes = await abortable(collect(pull.follow(undefined, 'containerd'), MAX_MANIFEST_SIZE), deadline.signal)
    const manifest = parseManifest(bytes)
    if (!manifest) throw notFound('upstream gives something that is not a manifest for this digest')
    return { digest: request.digest, mediaType: manifest.mediaType, bytes, source: 'first-pull' }
  }
}
