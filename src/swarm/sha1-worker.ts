/**
 * A worker thread behind `PieceVerifier` (piece-verifier.ts). Message { id, bytes, expected }:
 * checks that `bytes` hash to the 20-byte SHA-1 `expected` and answers { id, matches, bytes },
 * handing the memory of `bytes` back unchanged.
 */
import { createHash } from 'node:crypto'
import { parentPort } from 'node:worker_threads'

type Message = { id: number; bytes: Uint8Array; expected: Uint8Array }

parentPort!.on('message', ({ id, bytes, expected }: Message) => {
  const matches = createHash('sha1').update(bytes).digest().equals(expected)
  parentPort!.postMessage({ id, matches, bytes }, [bytes.buffer as ArrayBuffer])
})
