import type { StatusConfig } from '../config/commands.js'
import { InvalidValueError } from '../config/values.js'
import { STATS_VERSION, type StatsDocument } from '../status/stats.js'
import { renderStatus } from '../status/status-table.js'
import { ShoalError } from '../util/errors.js'

export class NodeUnreachableError extends ShoalError {
}

/** `http://host:port` from `host:port`, `:port` or a URL. */
export function statsUrl(addr: string): string {
  const trimmed = addr.trim()
  const base = /^https?:\/\//.test(trimmed) ? trimmed : `http://${trimmed.startsWith(':') ? `127.0.0.1${trimmed}` : trimmed}`
  let url: URL
  try {
    url = new URL('/stats', base)
  } catch {
    throw new InvalidValueError(`--addr: not host:port or a URL: ${JSON.stringify(addr)}`)
  }
  return url.toString()
}

/** `shoal status`: one node's /stats as tables (or JSON) for an operator's terminal. */
export async function runStatus(config: StatusConfig, signal: AbortSignal, write: (text: string) => void = (text) => process.stdout.write(text)): Promise<void> {
  const url = statsUrl(config.addr)
  let response: Response
  try {
    response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(config.timeout)]) })
  } catch (err) {
    const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message
    throw new NodeUnreachableError(`cannot reach ${url}: ${cause} (is kubectl port-forward running, and is --addr the node's --metrics-addr?)`)
  }
  if (!response.ok) throw new NodeUnreachableError(`${url} answered HTTP ${response.status}: is this a shoal metrics address?`)
  const stats = (await response.json().catch(() => undefined)) as StatsDocument | undefined
  if (!stats || typeof stats !== 'object' || stats.version !== STATS_VERSION) {
    throw new NodeUnreachableError(`${url} did not answer a version ${STATS_VERSION} stats document`)
  }
  write(config.json ? `${JSON.stringify(stats, null, 2)}\n` : renderStatus(stats))
}
