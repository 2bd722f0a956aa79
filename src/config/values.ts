import { parseMirroredRegistry, parseOriginUrl, type MirroredRegistry } from '../oci/registry-url.js'
import { parseHostPort, type HostPort } from '../net/address.js'
import { LOG_LEVELS, type LogLevel } from '../observe/logger.js'
import { ShoalError } from '../util/errors.js'

/** A value that does not parse; its message is shown to the user as is. */
export class InvalidValueError extends ShoalError {
  constructor(message: string) {
    super(message)
  }
}

export function parseBoolean(raw: string): boolean {
  const value = raw.trim().toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(value)) return true
  if (['false', '0', 'no', 'off'].includes(value)) return false
  throw new InvalidValueError(`${JSON.stringify(raw)} is not a boolean (true or false)`)
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Go-style durations as Spegel takes them: `20ms`, `5s`, `1m30s`, `1.5s`. Returns milliseconds. */
export function parseDuration(raw: string): number {
  const value = raw.trim()
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(value)) {
    throw new InvalidValueError(`${JSON.stringify(raw)} is not a duration (e.g. 500ms, 5s, 1m)`)
  }
  let total = 0
  for (const [, amount, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(amount) * DURATION_UNITS[unit as string]!
  return Math.round(total)
}

/** Milliseconds as the shortest duration `parseDuration` reads back: `500ms`, `10s`, `5m`, `1h`. */
export function formatDuration(ms: number): string {
  for (const [unit, factor] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms >= factor && ms % factor === 0) return `${ms / factor}${unit}`
  return `${ms}ms`
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9,
  ki: 1024, kib: 1024, mi: 1024 ** 2, mib: 1024 ** 2, gi: 1024 ** 3, gib: 1024 ** 3,
}

/** Byte sizes: `1048576`, `512KiB`, `32MiB`, `1.5GB`. */
export function parseByteSize(raw: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim())
  const unit = SIZE_UNITS[match?.[2]?.toLowerCase() ?? 'invalid']
  if (!match || unit === undefined) throw new InvalidValueError(`${JSON.stringify(raw)} is not a size (e.g. 32MiB, 500MB, 1048576)`)
  return Math.round(Number(match[1]) * unit)
}

/** A listen address; port 0 lets the OS choose. */
export function parseAddress(raw: string): HostPort {
  try {
    return parseHostPort(raw, { allowZeroPort: true })
  } catch (err) {
    throw new InvalidValueError((err as Error).message)
  }
}

export function parseLogLevel(raw: string): LogLevel {
  const value = raw.trim().toLowerCase()
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw new InvalidValueError(`log level must be one of ${LOG_LEVELS.join(', ')}`)
  return value as LogLevel
}

/** Lists arrive as repeated flags, or as one comma- or space-separated string (env, file). */
export function splitList(raw: string): string[] {
  return raw.split(/[\s,]+/).filter((item) => item !== '')
}

export function parseRegistryList(raw: string): MirroredRegistry[] {
  return splitList(raw).map((item) => wrap(() => parseMirroredRegistry(item)))
}

/** Mirror targets as origins without a trailing slash, e.g. `http://127.0.0.1:30020`. */
export function parseOriginList(raw: string): string[] {
  return splitList(raw).map((item) => wrap(() => parseOriginUrl(item).origin))
}

function wrap<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw new InvalidValueError((err as Error).message)
  }
}
