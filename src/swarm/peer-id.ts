import { randomBytes } from 'node:crypto'
import { isIPv4 } from 'node:net'

const CLIENT_PREFIX = Buffer.from('-SH0001-')

/**
 * A BitTorrent peer id that says which node it is: `-SH0001-`, the node's IPv4 address and
 * wire port, and random bytes. Lets every node name the peers it trades with in its stats,
 * whichever side opened the connection.
 */
export function encodePeerId(host: string, port: number): Buffer {
  const id = Buffer.alloc(20)
  CLIENT_PREFIX.copy(id, 0)
  const octets = isIPv4(host) ? host.split('.').map(Number) : [0, 0, 0, 0]
  Buffer.from(octets).copy(id, 8)
  id.writeUInt16BE(port, 12)
  randomBytes(6).copy(id, 14)
  return id
}

/** `ip:port` of a shoal peer id (hex), or undefined for anything else. */
export function decodePeerId(hex: string): string | undefined {
  if (!/^[0-9a-f]{40}$/i.test(hex)) return undefined
  const id = Buffer.from(hex, 'hex')
  if (!id.subarray(0, 8).equals(CLIENT_PREFIX)) return undefined
  const port = id.readUInt16BE(12)
  if (port === 0) return undefined
  return `${[...id.subarray(8, 12)].join('.')}:${port}`
}
