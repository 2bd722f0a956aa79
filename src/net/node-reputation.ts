import { systemClock, type Clock } from '../util/clock.js'

const MAX_ALIASES = 4096
const MAX_BANS = 4096

/**
 * One identity per node and one ban list for it. A node is named by the address of its registry
 * API (`host:registryPort`, what the DHT names); the address of its BitTorrent wire
 * (`host:wirePort`) is an alias the node itself tells: in its BEP 10 handshake (after it proved
 * the cluster key, with one) and with its metainfo over HTTP. A ban earned on either path holds
 * on both, and stats count the node once.
 */
export class NodeReputation {
  private readonly aliases = new Map<string, string>()
  private readonly bans = new Map<string, number>()

  constructor(private readonly clock: Clock = systemClock) {}

  /** `alias` is another address of the node `node`; a ban of either now covers both. */
  sameNode(alias: string, node: string): void {
    if (alias === node || this.aliases.get(alias) === node) return
    this.aliases.delete(alias)
    this.aliases.set(alias, node)
    if (this.aliases.size > MAX_ALIASES) this.aliases.delete(this.aliases.keys().next().value as string)
    const until = this.bans.get(alias)
    if (until !== undefined) this.extend(node, until)
  }

  /** The node's name for an address it was seen at: itself when no alias is known. */
  nodeOf(address: string): string {
    return this.aliases.get(address) ?? address
  }

  /** Bans the node behind `address` for `forMs`; false if it was banned already. */
  ban(address: string, forMs: number): boolean {
    if (this.isBanned(address)) return false
    const until = this.clock.now() + forMs
    this.extend(address, until)
    this.extend(this.nodeOf(address), until)
    return true
  }

  isBanned(address: string): boolean {
    const now = this.clock.now()
    return (this.bans.get(address) ?? 0) > now || (this.bans.get(this.nodeOf(address)) ?? 0) > now
  }

  /** Nodes banned now, each once, with when the ban ends. */
  banned(): { peer: string; until: string }[] {
    const now = this.clock.now()
    const nodes = new Map<string, number>()
    for (const [address, until] of this.bans) {
      if (until <= now) {
        this.bans.delete(address)
        continue
      }
      const node = this.nodeOf(address)
      nodes.set(node, Math.max(nodes.get(node) ?? 0, until))
    }
    return [...nodes].map(([peer, until]) => ({ peer, until: new Date(until).toISOString() }))
  }

  private extend(address: string, until: number): void {
    if ((this.bans.get(address) ?? 0) >= until) return
    this.bans.delete(address)
    this.bans.set(address, until)
    if (this.bans.size > MAX_BANS) this.bans.delete(this.bans.keys().next().value as string)
  }
}
