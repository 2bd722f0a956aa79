/**
 * One side of the Node floor (bench/floor.ts), as its own process so /proc counts its CPU alone:
 *
 *   node floor-peer.js server <file>                 serves the file over node:http (1 MiB reads), prints its port
 *   node floor-peer.js client <url> <out> <pieceLength>  GET, SHA-1 per piece, SHA-256 of the whole, positional writes
 *
 * The client prints one JSON line (bytes, seconds, the SHA-256), then exits when its stdin closes.
 */
import { createHash } from 'node:crypto'
import { closeSync, createReadStream, openSync, statSync, writeSync } from 'node:fs'
import http from 'node:http'

const READ_BYTES = 1024 * 1024

function serve(file: string): void {
  const size = statSync(file).size
  const server = http.createServer((_request, response) => {
    response.writeHead(200, { 'content-length': size })
    createReadStream(file, { highWaterMark: READ_BYTES }).pipe(response)
  })
  server.listen(0, '127.0.0.1', () => {
    const address = server.address()
    process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`)
  })
  process.on('SIGTERM', () => server.close(() => process.exit(0)))
}

async function download(url: string, outPath: string, pieceLength: number): Promise<void> {
  const out = openSync(outPath, 'w')
  const whole = createHash('sha256')
  let piece = createHash('sha1')
  let inPiece = 0
  let position = 0
  const started = performance.now()
  await new Promise<void>((resolve, reject) => {
    http.get(url, (response) => {
      response.on('data', (chunk: Buffer) => {
        whole.update(chunk)
        for (let offset = 0; offset < chunk.length;) {
          const take = Math.min(pieceLength - inPiece, chunk.length - offset)
          piece.update(chunk.subarray(offset, offset + take))
          offset += take
          inPiece += take
          if (inPiece === pieceLength) {
            piece.digest()
            piece = createHash('sha1')
            inPiece = 0
          }
        }
        writeSync(out, chunk, 0, chunk.length, position)
        position += chunk.length
      })
      response.on('end', resolve)
      response.on('error', reject)
    }).on('error', reject)
  })
  closeSync(out)
  const seconds = (performance.now() - started) / 1000
  process.stdout.write(`${JSON.stringify({ bytes: position, seconds, sha256: whole.digest('hex') })}\n`)
  // Stays until stdin closes, so the parent can read this process's CPU time from /proc first.
  await new Promise((resolve) => process.stdin.on('end', resolve).on('close', resolve).resume())
}

const [role, target, outPath, pieceLength] = process.argv.slice(2)
if (role === 'server' && target) serve(target)
else if (role === 'client' && target && outPath) await download(target, outPath, Number(pieceLength ?? READ_BYTES))
else {
  process.stderr.write('usage: floor-peer server <file> | floor-peer client <url> <out> [pieceLength]\n')
  process.exit(2)
}
