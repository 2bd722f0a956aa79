import type { FileHandle } from 'node:fs/promises'

/**
 * Reads exactly `length` bytes at `position` into a new buffer, or into the start of `into` when it
 * is long enough (the result is then a view of it); a file that ends first is an error naming `what`.
 */
export async function readExactly(handle: FileHandle, position: number, length: number, what: string, into?: Buffer): Promise<Buffer> {
  const buffer = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length)
  let filled = 0
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled)
    if (bytesRead === 0) throw new Error(`short read at ${position + filled} in ${what}`)
    filled += bytesRead
  }
  return buffer
}
