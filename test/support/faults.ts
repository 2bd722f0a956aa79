import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import type { LoopbackNode } from './cluster.js'

export const MiB = 1024 * 1024

export interface Pulled {
  status: number
  bytes: number
  digest: string
  ms: number
  /** The start of the body when the status is not 2xx: the OCI error saying why. */
  error: string | undefined
}

/** GETs a blob from a node's registry API and hashes what arrives (optionally a Range). */
export async function pullBlob(node: LoopbackNode, repository: string, digest: string, options: { range?: string; onBytes?: (total: number) => void } = {}): Promise<Pulled> {
  const started = performance.now()
  const response = await fetch(`${node.shoal.registryUrl}/v2/${repository}/blobs/${digest}?ns=registry.test`, { headers: options.range ? { range: options.range } : {} })
  if (!response.ok) {
    const error = (await response.text()).slice(0, 1_000)
    return { status: response.status, bytes: 0, digest: '', ms: performance.now() - started, error }
  }
  const hash = createHash('sha256')
  let bytes = 0
  if (response.body) {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      hash.update(chunk)
      bytes += chunk.length
      options.onBytes?.(bytes)
    }
  }
  return { status: response.status, bytes, digest: `sha256:${hash.digest('hex')}`, ms: performance.now() - started, error: undefined }
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

function pidOf(node: LoopbackNode): number {
  const pid = node.shoal.process.child.pid
  if (pid === undefined) throw new Error(`node ${node.index + 1} has no pid`)
  return pid
}

/** Freezes a node like a kernel stall: its sockets stay open, nothing answers. */
export function freeze(node: LoopbackNode): void {
  process.kill(pidOf(node), 'SIGSTOP')
}

export function thaw(node: LoopbackNode): void {
  process.kill(pidOf(node), 'SIGCONT')
}

export function kill(node: LoopbackNode): void {
  process.kill(pidOf(node), 'SIGKILL')
}

export function alive(node: LoopbackNode): boolean {
  return node.shoal.process.child.exitCode === null && node.shoal.process.child.signalCode === null
}

/** Resident memory of a node's process, MiB. */
export function rssMiB(node: LoopbackNode): number {
  const status = readFileSync(`/proc/${pidOf(node)}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024
}

/** Open file descriptors (files and sockets) of a node's process. */
export function fdCount(node: LoopbackNode): number {
  return readdirSync(`/proc/${pidOf(node)}/fd`).length
}
