import { readFile } from 'node:fs/promises'

const ACCESS_LINE = /^(\S+) - \S+ \[[^\]]+\] "(\w+) (\S+) HTTP\/[\d.]+" (\d+) (\d+)/

/** Bytes the upstream registry sent, by client address, from its access log. */
export async function upstreamBytesByClient(logPath: string, since = 0): Promise<Map<string, number>> {
  const bytes = new Map<string, number>()
  const lines = (await readFile(logPath, 'utf8').catch(() => '')).split('\n')
  for (const line of lines.slice(since)) {
    const match = ACCESS_LINE.exec(line)
    if (!match || match[2] !== 'GET') continue
    bytes.set(match[1]!, (bytes.get(match[1]!) ?? 0) + Number(match[5]))
  }
  return bytes
}

export async function lineCount(path: string): Promise<number> {
  return (await readFile(path, 'utf8').catch(() => '')).split('\n').length - 1
}

interface TransferView {
  digest: string
  role: string
  peers: { peer: string; received: number }[]
}

/** Bytes a node received for these digests, by peer (`ip:port`), over swarm and HTTP transfers. */
export function bytesFromPeers(stats: Record<string, unknown>, digests: Set<string>): Map<string, number> {
  const transfers = [...(stats['transfers'] as TransferView[]), ...(stats['recent'] as TransferView[])]
  const bytes = new Map<string, number>()
  for (const transfer of transfers) {
    if (!digests.has(transfer.digest) || transfer.role === 'seed') continue
    for (const peer of transfer.peers) bytes.set(peer.peer, (bytes.get(peer.peer) ?? 0) + peer.received)
  }
  return bytes
}

/** Whether every sample of a Prometheus histogram with these labels fell in the bucket `le`. */
export function allWithin(metrics: string, name: string, labels: Record<string, string>, le: string): { within: number; count: number } {
  const matches = (line: string): boolean => Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))
  let within = 0
  let count = 0
  let bucketSeen = false
  for (const line of metrics.split('\n')) {
    if (line.startsWith(`${name}_bucket{`) && line.includes(`le="${le}"`)) bucketSeen = true
    if (line.startsWith(`${name}_bucket{`) && matches(line) && line.includes(`le="${le}"`)) within += Number(line.split(' ').pop())
    if (line.startsWith(`${name}_count{`) && matches(line)) count += Number(line.split(' ').pop())
  }
  if (count > 0 && !bucketSeen) throw new Error(`${name} has no bucket le="${le}"`)
  return { within, count }
}
