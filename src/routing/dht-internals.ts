import type { Socket } from 'node:dgram'
import type DHT from 'bittorrent-dht'
import { assertPinned, type PackagePin } from '../util/packages.js'
import { encodeCompactPeer } from './record-store.js'
import type { PeerAddress } from './router.js'

/**
 * The one door to the private members of the DHT: bittorrent-dht, the k-rpc it queries through
 * and the k-rpc-socket under that. Nothing else in shoal reads or replaces them; each operation
 * is written for the releases pinned here, which `assertDhtPinned` checks at start.
 *
 * `DhtRouter.start` applies the patches in this order: `filterDatagrams` on the socket before
 * bittorrent-dht gets it, then, on the DHT, `replaceRecordStore`, `admitNodesThatAnswer`,
 * `answerGetPeersWithNodes` (before listening) and `answerWithdrawals` (wraps the handler the
 * previous one installed, so withdrawals are answered first).
 */
export const DHT_PINS: readonly PackagePin[] = [
  { name: 'bittorrent-dht', version: '11.0.12', loadedBy: [] },
  { name: 'k-rpc', version: '5.1.0', loadedBy: ['bittorrent-dht'] },
  { name: 'k-rpc-socket', version: '1.11.1', loadedBy: ['bittorrent-dht', 'k-rpc'] },
]

/** Refuses, naming the package, a DHT library other than the pinned release. */
export function assertDhtPinned(): void {
  assertPinned(DHT_PINS)
}

/** shoal's own query: a holder that stops asks the nodes it announced to to drop its record (same token rule as announce_peer). */
export const WITHDRAW_QUERY = 'shoal_withdraw_peer'

/**
 * Has every datagram k-rpc-socket receives pass `admit` (undefined drops it) and every one it
 * sends pass `seal`, on a socket bittorrent-dht is then given.
 */
export function filterDatagrams(socket: Socket, admit: (datagram: Buffer, from: { address: string; port: number }) => Buffer | undefined, seal?: (datagram: Buffer) => Buffer): void {
  const emit = socket.emit.bind(socket) as (event: string | symbol, ...args: unknown[]) => boolean
  socket.emit = ((event: string | symbol, ...args: unknown[]) => {
    if (event !== 'message') return emit(event, ...args)
    const from = args[1] as { address: string; port: number }
    const packet = admit(args[0] as Buffer, from)
    return packet ? emit(event, packet, from) : false
  }) as Socket['emit']
  if (!seal) return
  const send = socket.send.bind(socket) as (...args: unknown[]) => void
  // k-rpc-socket sends (buffer, offset, length, port, host, callback); dgram itself calls send
  // again with (list, port, host, callback), already sealed, for datagrams queued before bind.
  socket.send = ((...args: unknown[]) => {
    const [buffer, offset, length, port, host, callback] = args as [Uint8Array, number, number, number, string, (err: Error | null) => void]
    if (!(buffer instanceof Uint8Array) || typeof offset !== 'number') return send(...args)
    const sealed = seal(Buffer.from(buffer.buffer, buffer.byteOffset + offset, length))
    send(sealed, 0, sealed.length, port, host, callback)
  }) as unknown as Socket['send']
}

/** bittorrent-dht's record store as shoal's RecordStore offers it. */
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
