import type { FileHandle } from 'node:fs/promises'

/** Reads exactly `length` bytes at `position` into a new buffer; a file that ends first is an error naming `what`. */
export async function readExactly(handle: FileHandle, position: number, length: number, what: string): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length)
  let filled = 0
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled)
    if (bytesRead === 0) throw new Error(`short read at ${position + filled} in ${what}`)
    filled += bytesRead
  }
  return buffer
}
