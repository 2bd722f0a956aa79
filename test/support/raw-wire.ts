import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import type { Digest } from '../../src/oci/digest.js'
import { decodeMetainfo } from '../../src/swarm/metainfo.js'
import { eventually } from './eventually.js'
import { INFOHASH_HEADER, METAINFO_PATH, PEER_REQUEST_HEADER, WIRE_PORT_HEADER } from '../../src/protocol/peer-api.js'

const PROTOCOL = Buffer.from('\x13BitTorrent protocol', 'latin1')
const BLOCK = 16 * 1024

/** A holder's wire port and a blob's infohash, as its metainfo answer gives them (it starts seeding). */
export async function wireTarget(registryUrl: string, digest: string): Promise<{ port: number; infoHash: string; pieceLength: number }> {
  const response = await fetch(`${registryUrl}${METAINFO_PATH}${digest}`, { headers: { [PEER_REQUEST_HEADER]: '1' } })
  if (response.status !== 200) throw new Error(`metainfo: ${response.status}`)
  const metainfo = decodeMetainfo(Buffer.from(await response.arrayBuffer()), digest as Digest)
  return { port: Number(response.headers.get(WIRE_PORT_HEADER)), infoHash: response.headers.get(INFOHASH_HEADER)!, pieceLength: metainfo.pieceLength }
}

function message(id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(5)
  header.writeUInt32BE(payload.length + 1, 0)
  header.writeUInt8(id, 4)
  return Buffer.concat([header, payload])
}

/**
 * A BitTorrent connection written by hand, for misbehaving on purpose: it handshakes for a
 * torrent and then does only what the test tells it (nothing, or ask for everything and stop
 * reading).
 */
export class RawWire {
  readonly socket: Socket
  closed = false
  private received = Buffer.alloc(0)
  private unchoked = false
  private handshaken = false
  private messages = 0
  /** Piece messages (id 7) received: blocks the other end sent. */
  pieces = 0

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('close', () => { this.closed = true })
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
  }

  static async open(host: string, port: number, infoHash: string, peerId: Uint8Array = Buffer.from(`-RW0001-${randomBytes(6).toString('hex')}`, 'latin1')): Promise<RawWire> {
    const socket = connect(port, host)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    const wire = new RawWire(socket)
    socket.write(Buffer.concat([PROTOCOL, Buffer.alloc(8), Buffer.from(infoHash, 'hex'), peerId]))
    return wire
  }

  /** Says it is interested, waits to be unchoked, asks for every block of `length` bytes, then stops reading. */
  async requestEverythingAndStopReading(length: number, pieceLength: number, timeoutMs = 10_000): Promise<void> {
    // The holder's first message (its bitfield) says it is listening for ours.
    await eventually('the holder\'s first message', () => this.messages > 0 || this.closed, timeoutMs, 20)
    this.socket.write(message(2))
    await eventually('unchoked', () => {
      if (this.closed) throw new Error('never unchoked: the holder closed the connection')
      return this.unchoked
    }, timeoutMs, 20)
    this.socket.pause()
    const requests: Buffer[] = []
    for (let offset = 0; offset < length; offset += BLOCK) {
      const payload = Buffer.alloc(12)
      payload.writeUInt32BE(Math.floor(offset / pieceLength), 0)
      payload.writeUInt32BE(offset % pieceLength, 4)
      payload.writeUInt32BE(Math.min(BLOCK, length - offset), 8)
      requests.push(message(6, payload))
    }
    this.socket.write(Buffer.concat(requests))
  }

  /**
   * Says it is interested, waits (bounded) to be unchoked, asks for the first block of piece 0
   * and waits until it arrives or the connection closes. Never proves a cluster key.
   */
  async requestFirstBlock(timeoutMs = 10_000): Promise<{ unchoked: boolean; pieces: number; closed: boolean }> {
    await eventually('the holder\'s first message', () => this.messages > 0 || this.closed, timeoutMs, 20).catch(() => {})
    this.socket.write(message(2))
    await eventually('unchoked', () => this.unchoked || this.closed, 2_000, 20).catch(() => {})
    const payload = Buffer.alloc(12)
    payload.writeUInt32BE(BLOCK, 8)
    if (!this.closed) this.socket.write(message(6, payload))
    await eventually('a block or a close', () => this.pieces > 0 || this.closed, timeoutMs, 20).catch(() => {})
    return { unchoked: this.unchoked, pieces: this.pieces, closed: this.closed }
  }

  /** Says it is interested, then nothing more: never a request, whatever it is offered. */
  async sayInterested(timeoutMs = 10_000): Promise<void> {
    await eventually('the holder\'s first message', () => this.messages > 0 || this.closed, timeoutMs, 20)
    this.socket.write(message(2))
  }

  close(): void {
    this.socket.destroy()
  }

  /** Only looks for an unchoke (id 1) and pieces (id 7) after the 68-byte handshake; everything else is skipped. */
  private onData(chunk: Buffer): void {
    this.received = Buffer.concat([this.received, chunk])
    if (!this.handshaken) {
      if (this.received.length < 68) return
      this.received = this.received.subarray(68)
      this.handshaken = true
    }
    let offset = 0
    while (this.received.length - offset >= 4) {
      const size = this.received.readUInt32BE(offset)
      if (this.received.length - offset < 4 + size) break
      if (size > 0) this.messages++
      if (size > 0 && this.received[offset + 4] === 1) this.unchoked = true
      if (size > 0 && this.received[offset + 4] === 7) this.pieces++
      offset += 4 + size
    }
    this.received = this.received.subarray(offset)
  }
}
