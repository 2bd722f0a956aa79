import type DHT from 'bittorrent-dht'
import type { PeerAddress } from './router.js'
import { WITHDRAW_QUERY } from './krpc-guard.js'

/**
 * The parts of bittorrent-dht 11 (not its public API) that keeping holder records tidy needs:
 * the record store, the per-target lookup tables with the tokens nodes gave, token checks and
 * the query handler.
 */
interface RecordStoreShape {
  add(name: string, record: Buffer): void
  remove(name: string, record: Buffer): void
  get(name: string, limit?: number): Uint8Array[]
  destroy(): void
}

interface DhtInternals {
  _peers: RecordStoreShape
  _tables: { get(hex: string): { closest(target: Buffer): unknown[] } | undefined }
  _rpc: {
    id: Buffer
    socket: NodeJS.EventEmitter
    nodes: { get(id: Uint8Array): unknown; closest(target: Uint8Array): unknown[] }
    emit(event: string, ...args: unknown[]): boolean
    queryAll(nodes: unknown[], message: unknown, visit: null, callback: (err: Error | null, count?: number) => void): void
    response(peer: unknown, query: unknown, reply: unknown, nodes?: unknown[]): void
  }
  _validateToken(host: string, token: Buffer): boolean
  _generateToken(host: string): Buffer
  _onquery(query: { q?: Uint8Array; a?: Record<string, unknown> }, peer: { address: string; port: number }): void
}

const internals = (dht: DHT): DhtInternals => dht as unknown as DhtInternals

/** Puts `store` in place of bittorrent-dht's own record store. */
export function replaceRecordStore(dht: DHT, store: RecordStoreShape): void {
  const dhtInternals = internals(dht)
  dhtInternals._peers.destroy()
  dhtInternals._peers = store
}

/** A peer record as BEP 5 stores it: 4 bytes of IPv4 address, 2 of port; undefined for anything else. */
export function encodeCompactPeer(peer: PeerAddress): Buffer | undefined {
  const parts = peer.host.split('.').map(Number)
  if (parts.length !== 4 || parts.some((part) => !Number.isInteger(part) || part < 0 || part > 255)) return undefined
  if (!Number.isInteger(peer.port) || peer.port < 1 || peer.port > 65535) return undefined
  const record = Buffer.alloc(6)
  parts.forEach((part, index) => record.writeUInt8(part, index))
  record.writeUInt16BE(peer.port, 4)
  return record
}

/** Adds or removes the record "`peer` holds `target`" in this node's own store; true if the store changed. */
export function changeStoredRecord(dht: DHT, target: Buffer, peer: PeerAddress, change: 'add' | 'remove'): boolean {
  const record = encodeCompactPeer(peer)
  if (!record) return false
  const store = internals(dht)._peers
  const name = target.toString('hex')
  const present = store.get(name).some((stored) => record.equals(stored))
  if (present === (change === 'add')) return false
  store[change](name, record)
  return true
}

/**
 * Answers shoal_withdraw_peer queries: the sender's record for the info_hash (its address, the
 * port it names) is removed, if its token is valid for its address, exactly as an announce
 * would have been accepted. Other queries go to bittorrent-dht.
 */
export function answerWithdrawals(dht: DHT, onWithdrawn: (peer: PeerAddress) => void): void {
  const dhtInternals = internals(dht)
  const original = dhtInternals._onquery.bind(dht)
  dhtInternals._onquery = (query, peer) => {
    if (Buffer.from(query.q ?? []).toString() !== WITHDRAW_QUERY) return original(query, peer)
    const args = query.a ?? {}
    const token = args['token'], infoHash = args['info_hash'], port = args['port']
    if (!(token instanceof Uint8Array) || !(infoHash instanceof Uint8Array) || typeof port !== 'number') return
    if (!dhtInternals._validateToken(peer.address, Buffer.from(token))) return
    const holder = { host: peer.address, port }
    if (changeStoredRecord(dht, Buffer.from(infoHash), holder, 'remove')) onWithdrawn(holder)
    dhtInternals._rpc.response(peer, query, { id: dhtInternals._rpc.id })
  }
}

/**
 * Asks the nodes this one announced `target` to (the closest of its last lookup, with their
 * tokens) to drop its record. Resolves when they answered, or when `signal` aborts.
 */
export function sendWithdrawal(dht: DHT, target: Buffer, port: number, signal: AbortSignal): Promise<void> {
  const dhtInternals = internals(dht)
  const table = dhtInternals._tables.get(target.toString('hex'))
  if (!table || signal.aborted) return Promise.resolve()
  const message = { q: WITHDRAW_QUERY, a: { id: dhtInternals._rpc.id, token: null, info_hash: target, port } }
  return new Promise((resolve) => {
    signal.addEventListener('abort', () => resolve(), { once: true })
    dhtInternals._rpc.queryAll(table.closest(target), message, null, () => resolve())
  })
}

/** Pings of nodes that queried this one, at most this many at once. */
const MAX_PENDING_PINGS = 256

/**
 * k-rpc puts every node that sends a query into the routing table. Instead, a node that queries
 * this one and is not in the table yet is pinged, and enters it only by answering (k-rpc adds
 * nodes that respond): ids that never answer do not displace the nodes that do.
 */
export function admitNodesThatAnswer(dht: DHT): void {
  const rpc = internals(dht)._rpc
  const pinging = new Set<string>()
  rpc.socket.removeAllListeners('query')
  rpc.socket.on('query', (query: { a?: { id?: unknown } }, peer: { address: string; port: number }) => {
    const id = query.a?.id
    const address = `${peer.address}:${peer.port}`
    if (id instanceof Uint8Array && !rpc.nodes.get(id) && !pinging.has(address) && pinging.size < MAX_PENDING_PINGS) {
      pinging.add(address)
      dht.addNode({ host: peer.address, port: peer.port })
      setTimeout(() => pinging.delete(address), 5_000).unref()
    }
    rpc.emit('query', query, peer)
  })
}

/**
 * bittorrent-dht answers get_peers with the records it stores or, if it has none, the closest
 * nodes it knows: never both. A lookup that meets a node storing only stale records then learns
 * no nodes from it and may end before reaching the nodes that store the live ones. Here every
 * answer carries the closest nodes as well (BEP 5 allows both).
 */
export function answerGetPeersWithNodes(dht: DHT): void {
  const dhtInternals = internals(dht)
  const original = dhtInternals._onquery.bind(dht)
  dhtInternals._onquery = (query, peer) => {
    const infoHash = query.a?.['info_hash']
    if (Buffer.from(query.q ?? []).toString() !== 'get_peers' || !(infoHash instanceof Uint8Array)) return original(query, peer)
    const values = dhtInternals._peers.get(Buffer.from(infoHash).toString('hex'))
    const reply = { id: dhtInternals._rpc.id, token: dhtInternals._generateToken(peer.address), ...(values.length ? { values } : {}) }
    dhtInternals._rpc.response(peer, query, reply, dhtInternals._rpc.nodes.closest(infoHash))
  }
}
