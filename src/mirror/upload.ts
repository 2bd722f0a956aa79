import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { TransferLedger } from '../observe/ledger.js'
import type { Metrics } from '../observe/metrics.js'
import type { Digest } from '../oci/digest.js'
import type { Swarm } from '../swarm/swarm.js'

/**
 * A body uploaded to a peer over HTTP: counted, and sharing the node's upload limit with the
 * BitTorrent wire when one is set (no throttle stage otherwise).
 */
export function countedUpload(components: { ledger: TransferLedger; metrics: Metrics; swarm: Swarm }, body: Readable, digest: Digest, peer: string, via: 'http' | 'http-pieces' = 'http'): Readable {
  const { ledger, metrics, swarm } = components
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      ledger.record({ type: 'served', digest, peer, bytes: chunk.length })
      metrics.peerBytes.inc({ direction: 'up', via }, chunk.length)
      done(null, chunk)
    },
  })
  const throttle = swarm.uploadThrottle()
  void (throttle ? pipeline(body, throttle, counter) : pipeline(body, counter)).catch(() => {})
  return counter
}
