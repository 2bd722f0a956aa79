/**
 * The worker thread behind `Sha256Hasher` (sha256-hasher.ts): one running SHA-256 per id, fed in
 * the order the bytes are posted. Messages: { id, bytes } adds bytes and answers { hashed: n, memory }
 * with the memory under them handed back, to be filled again;
 * { id, end: true } answers { id, hex } and forgets the id; { id, drop: true } forgets it.
 */
import { createHash, type Hash } from 'node:crypto'
import { parentPort } from 'node:worker_threads'

type Message = { id: number; bytes?: Uint8Array; end?: boolean; drop?: boolean }

const hashes = new Map<number, Hash>()
parentPort!.on('message', ({ id, bytes, end, drop }: Message) => {
  if (drop) {
    hashes.delete(id)
    return
  }
  let hash = hashes.get(id)
  if (!hash) hashes.set(id, (hash = createHash('sha256')))
  if (bytes) {
    hash.update(bytes)
    parentPort!.postMessage({ hashed: bytes.length, memory: bytes.buffer }, [bytes.buffer as ArrayBuffer])
  }
  if (end) {
    hashes.delete(id)
    parentPort!.postMessage({ id, hex: hash.digest('hex') })
  }
})
