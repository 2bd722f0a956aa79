import { promises as dns } from 'node:dns'
import type { DialAddress } from '../net/address.js'
import type { SignalOptions } from '../util/abort.js'

/** Where the DHT finds its first nodes. Never the public BitTorrent routers. */
export interface Bootstrap {
  readonly kind: 'static' | 'dns'
  /** Addresses of other nodes' DHT sockets (possibly including this node's own). */
  addresses(options?: SignalOptions): Promise<DialAddress[]>
}

export class StaticBootstrap implements Bootstrap {
  readonly kind = 'static'
  constructor(private readonly peers: DialAddress[]) {}

  async addresses(): Promise<DialAddress[]> {
    return this.peers
  }
}

/** A headless Service's A records, each with the DHT port all nodes share. */
export class DnsBootstrap implements Bootstrap {
  readonly kind = 'dns'
  constructor(private readonly domain: string, private readonly port: number, private readonly resolve4: (name: string) => Promise<string[]> = (name) => dns.resolve4(name)) {}

  async addresses(): Promise<DialAddress[]> {
    try {
      return (await this.resolve4(this.domain)).map((host) => ({ host, port: this.port }))
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // No records yet (the first pod of the DaemonSet): bootstrap alone.
      if (code === 'ENOTFOUND' || code === 'ENODATA') return []
      throw err
    }
  }
}
