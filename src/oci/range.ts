import { RangeInvalidError } from './errors.js'

/** An inclusive byte range within a blob, as in HTTP. */
export interface ByteRange {
  start: number
  end: number
}

const SINGLE_RANGE = /^bytes[ \t]*=[ \t]*(\d{0,16})[ \t]*-[ \t]*(\d{0,16})[ \t]*$/i

/**
 * Parses one `Range` header against a blob of `size` bytes. Returns undefined when there is
 * no header. Throws RangeInvalidError (416) for malformed, multi-part or unsatisfiable ranges.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined
  if (header.length > 200) throw new RangeInvalidError('Range header is too long')
  if (header.includes(',')) throw new RangeInvalidError('only a single byte range is supported', size)
  const match = SINGLE_RANGE.exec(header)
  if (!match) throw new RangeInvalidError('Range must look like bytes=<start>-[<end>] or bytes=-<suffix>')
  const [, first, last] = match as unknown as [string, string, string]
  if (first === '' && last === '') throw new RangeInvalidError('Range has neither start nor end')
  if (first === '') return suffixRange(Number(last), size)
  const start = Number(first)
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1)
  if (last !== '' && Number(last) < start) throw new RangeInvalidError('Range end is before its start', size)
  if (start >= size) throw new RangeInvalidError(`Range starts at or after the end of the ${size}-byte blob`, size)
  return { start, end }
}

function suffixRange(suffix: number, size: number): ByteRange {
  if (suffix === 0 || size === 0) throw new RangeInvalidError('suffix Range selects no bytes', size)
  return { start: Math.max(0, size - suffix), end: size - 1 }
}

export function rangeLength(range: ByteRange): number {
  return range.end - range.start + 1
}

export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`
}

export function isWholeBlob(range: ByteRange | undefined, size: number): boolean {
  return range === undefined || (range.start === 0 && range.end === size - 1)
}
