import { createSocket, type Socket } from 'node:dgram'
import bencode from 'bencode'
import type { ClusterKey } from '../net/cluster-key.js'
import type { ReplayGuard } from '../net/replay-guard.js'
import { filterDatagrams, WITHDRAW_QUERY } from './dht-internals.js'
import { openDatagram, sealDatagram } from './dht-seal.js'
import type { SourceLimits } from './source-limits.js'

const ID_LENGTH = 20
const COMPACT_NODE_LENGTH = 26
const COMPACT_PEER_LENGTH = 6
const MAX_PACKET_BYTES = 8192
/** Queries of BEP 5 that a peer lookup DHT answers, and shoal's withdraw; BEP 44 get/put is not used here. */
const QUERIES = new Set(['ping', 'find_node', 'get_peers', 'announce_peer', WITHDRAW_QUERY])

type Dict = Record<string, unknown>

/**
 * What is wrong with a KRPC datagram, or undefined if it has the shape bittorrent-dht and
 * k-rpc expect. Those libraries throw (and would crash the daemon) on well-formed bencode
 * with wrong field types, so every packet is checked before they see it.
 */
export function krpcProblem(packet: Uint8Array): string | undefined {
  const verdict = inspectKrpc(packet)
  return 'problem' in verdict ? verdict.problem : undefined
}

/** The kind of a well-formed KRPC datagram (the query's name, `response` or `error`), or what is wrong with it. */
export function inspectKrpc(packet: Uint8Array): { kind: string } | { problem: string } {
  if (packet.length === 0 || packet.length > MAX_PACKET_BYTES) return { problem: 'bad size' }
  let message: unknown
  try {
    message = bencode.decode(packet)
  } catch {
    return { problem: 'not bencode' }
  }
  const problem = messageProblem(message)
  if (problem) return { problem }
  const type = text((message as Dict)['y'])
  return { kind: type === 'q' ? text((message as Dict)['q'])! : type === 'r' ? 'response' : 'error' }
}

function messageProblem(message: unknown): string | undefined {
  if (!isDict(message) || !isBytes(message['t'])) return 'no transaction id'
  const type = text(message['y'])
  if (type === 'q') return queryProblem(message)
  if (message['t'].length < 2) return 'short transaction id'
  if (type === 'r') return responseProblem(message['r'])
  if (type === 'e') return Array.isArray(message['e']) ? undefined : 'error without a list'
  return 'unknown message type'
}

function queryProblem(message: Dict): string | undefined {
  const name = text(message['q'])
  const args = message['a']
  if (!name || !QUERIES.has(name)) return 'unsupported query'
  if (!isDict(args) || !isBytes(args['id'], ID_LENGTH)) return 'query without a node id'
  if (name === 'find_node' && !isBytes(args['target'], ID_LENGTH)) return 'find_node without a target'
  if (name !== 'ping' && name !== 'find_node' && !isBytes(args['info_hash'], ID_LENGTH)) return `${name} without an info_hash`
  if (name === 'announce_peer' || name === WITHDRAW_QUERY) {
    if (!isBytes(args['token'])) return `${name} without a token`
    for (const key of ['port', 'implied_port']) {
      if (args[key] !== undefined && !(Number.isInteger(args[key]) && (args[key] as number) >= 0 && (args[key] as number) <= 65535)) return `bad ${key}`
    }
  }
  return undefined
}

function responseProblem(reply: unknown): string | undefined {
  if (!isDict(reply) || !isBytes(reply['id'], ID_LENGTH)) return 'response without a node id'
  const nodes = reply['nodes']
  if (nodes !== undefined && !(isBytes(nodes) && nodes.length % COMPACT_NODE_LENGTH === 0)) return 'bad nodes'
  const values = reply['values']
  if (values !== undefined && !(Array.isArray(values) && values.every((value) => isBytes(value, COMPACT_PEER_LENGTH)))) return 'bad values'
  if (reply['token'] !== undefined && !isBytes(reply['token'])) return 'bad token'
  return undefined
}

function isDict(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
}

function isBytes(value: unknown, length?: number): value is Uint8Array {
  return value instanceof Uint8Array && (length === undefined || value.length === length)
}

function text(value: unknown): string | undefined {
  return value instanceof Uint8Array ? Buffer.from(value).toString('latin1') : undefined
}

export interface GuardedSocketInit {
  /** With a key: every datagram is sealed on the way out and must be on the way in. */
  key?: ClusterKey | undefined
  replay?: ReplayGuard | undefined
  limits: SourceLimits
  onDrop: (reason: string, from: string, kind: DropKind) => void
}

/** Why a datagram was dropped, as counted: no valid seal, over a rate, or not KRPC as expected. */
export type DropKind = 'unauthenticated' | 'rate-limited' | 'malformed'

type Admitted = { packet: Buffer } | { problem: string; kind: DropKind }

/**
 * A UDP socket for k-rpc that drops, before k-rpc or bittorrent-dht see them: datagrams not
 * sealed with the cluster key (when there is one), malformed KRPC, and queries beyond a
 * source's rate limit.
 */
export function guardedKrpcSocket(init: GuardedSocketInit): Socket {
  const socket = createSocket('udp4')
  const key = init.key
  filterDatagrams(socket, (datagram, from) => {
    const packet = admit(init, datagram, from.address)
    if ('packet' in packet) return packet.packet
    init.onDrop(packet.problem, `${from.address}:${from.port}`, packet.kind)
    return undefined
  }, key && ((datagram) => sealDatagram(key, datagram)))
  return socket
}

function admit(init: GuardedSocketInit, datagram: Buffer, source: string): Admitted {
  const opened = init.key && init.replay ? openDatagram(init.key, init.replay, datagram) : { packet: datagram }
  if ('problem' in opened) return { ...opened, kind: 'unauthenticated' }
  const verdict = inspectKrpc(opened.packet)
  if ('problem' in verdict) return { ...verdict, kind: 'malformed' }
  const limited = verdict.kind === 'announce_peer' ? 'announce' : verdict.kind === 'response' || verdict.kind === 'error' ? undefined : 'query'
  if (limited && !init.limits.allow(source, limited)) return { problem: `${limited} rate limit`, kind: 'rate-limited' }
  return opened
}
