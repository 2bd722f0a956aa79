import type { SignalOptions } from '../util/abort.js'
import { createHash } from 'node:crypto'

/** Where a peer's HTTP API answers. Records carry it: nodes need not share ports. */
export interface PeerAddress {
  host: string
  port: number
}

export function peerKey(peer: PeerAddress): string {
  return `${peer.host}:${peer.port}`
}

/**
 * Finds which nodes hold a key (a digest such as `sha256:…`, or a tag reference
 * `registry/repository:tag`) and tells others what this node holds.
 */
export interface Router {
  /** Whether lookups can find anything: a non-empty routing table, or this is the only node. */
  ready(): boolean
  /** Holders of `key` as they are found, never this node; ends when the lookup is complete or `signal` aborts. */
  lookup(key: string, options?: SignalOptions): AsyncIterable<PeerAddress>
  /** Announces the keys now and keeps them announced until withdrawn. */
  advertise(keys: Iterable<string>): void
  /** Stops announcing the keys; records at other nodes expire by themselves. */
  withdraw(keys: Iterable<string>): void
  /** Drops a record of `peer` holding `key` that this node stores: the holder stopped answering. */
  forget(key: string, peer: PeerAddress): void
  /** Keys currently announced. */
  advertisedKeys(): ReadonlySet<string>
}

/** The DHT target of a key: SHA-1 of the key string. */
export function routingTarget(key: string): Buffer {
  return createHash('sha1').update(key).digest()
}
