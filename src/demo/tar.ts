/** A minimal ustar archive with regular files: enough for containerd to unpack a test layer. */
export function tarArchive(files: { name: string; data: Buffer }[]): Buffer {
  const parts: Buffer[] = []
  for (const file of files) {
    parts.push(tarHeader(file.name, file.data.length), file.data)
    const padding = (512 - (file.data.length % 512)) % 512
    if (padding) parts.push(Buffer.alloc(padding))
  }
  parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}

function tarHeader(name: string, size: number): Buffer {
  if (Buffer.byteLength(name) > 99) throw new Error(`tar name too long: ${name}`)
  const header = Buffer.alloc(512)
  header.write(name, 0, 'utf8')
  header.write('0000644\0', 100, 'ascii')
  header.write('0000000\0', 108, 'ascii')
  header.write('0000000\0', 116, 'ascii')
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii')
  header.write(`${(1_700_000_000).toString(8).padStart(11, '0')}\0`, 136, 'ascii')
  header.write('        ', 148, 'ascii')
  header.write('0', 156, 'ascii')
  header.write('ustar\0', 257, 'ascii')
  header.write('00', 263, 'ascii')
  let checksum = 0
  for (const byte of header) checksum += byte
  header.write(`${checksum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii')
  return header
}
