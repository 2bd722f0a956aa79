import { networkInterfaces } from 'node:os'
import { ShoalError } from '../util/errors.js'

/** A listen or dial address: `:5000`, `0.0.0.0:5000`, `127.0.0.1:5000`, `[::1]:5000`, `node-1:5000`. */
export interface HostPort {
  /** Undefined for `:port` (all interfaces). */
  host: string | undefined
  port: number
}

export class InvalidAddressError extends ShoalError {
  constructor(value: string, why: string) {
    super(`${JSON.stringify(value)} is not an address: ${why} (expected [host]:port, e.g. :5000 or 10.0.0.1:5000)`)
  }
}

export function parseHostPort(value: string, options: { allowZeroPort?: boolean } = {}): HostPort {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(value.trim())
  if (!match) throw new InvalidAddressError(value, 'no port')
  const port = Number(match[3])
  if (port > 65535 || (port === 0 && !options.allowZeroPort)) throw new InvalidAddressError(value, 'port out of range')
  const host = match[1] ?? match[2]
  return { host: host === '' ? undefined : host, port }
}

/** An address to connect to: host and port both required. */
export interface DialAddress {
  host: string
  port: number
}

export function parseDialAddress(value: string): DialAddress {
  const address = parseHostPort(value)
  if (address.host === undefined) throw new InvalidAddressError(value, 'a host is required')
  return { host: address.host, port: address.port }
}

export function formatHostPort(address: HostPort): string {
  const host = address.host ?? ''
  return `${host.includes(':') ? `[${host}]` : host}:${address.port}`
}

/** The addresses that mean "this node": the bound host, or every local interface address. */
export function localHosts(listen: HostPort): Set<string> {
  if (listen.host && listen.host !== '0.0.0.0' && listen.host !== '::') return new Set([listen.host])
  const hosts = new Set<string>()
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) hosts.add(address.address)
  }
  return hosts
}
