import { closeSync, openSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { round } from './numbers.js'
import type { ThroughputRow } from './throughput.js'

const MiB = 1024 * 1024

/** Kernel CPU seconds per GB this process spends writing `sizeMiB` to a new file in 1 MiB writes. */
function writeNewFile(path: string, sizeMiB: number): { seconds: number; kernelSecondsPerGb: number; cpuSecondsPerGb: number } {
  const chunk = Buffer.alloc(MiB, 7)
  const started = performance.now()
  const before = process.cpuUsage()
  const fd = openSync(path, 'w')
  try {
    for (let i = 0; i < sizeMiB; i++) writeSync(fd, chunk, 0, MiB, i * MiB)
  } finally {
    closeSync(fd)
  }
  const used = process.cpuUsage(before)
  const gb = sizeMiB * MiB / 1e9
  return { seconds: (performance.now() - started) / 1000, kernelSecondsPerGb: used.system / 1e6 / gb, cpuSecondsPerGb: (used.user + used.system) / 1e6 / gb }
}

/**
 * What writing the blob to a new file costs this machine's kernel, twice: into two files kept
 * side by side (the second needs memory the first did not take), then once more into the first
 * file's place right after removing it (memory just freed). Every requester writes each byte it
 * receives to its download file once; on a VM that backs guest memory on first touch, new page
 * cache is far dearer than page cache just freed, and the floor, rerun in place, mostly gets the latter.
 */
export async function pageCacheWriteRows(dir: string, sizeMiB: number): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = []
  const paths = [join(dir, 'page-cache-1'), join(dir, 'page-cache-2')]
  const row = (label: string, run: ReturnType<typeof writeNewFile>): ThroughputRow => ({
    case: label, sources: 0, seconds: round(run.seconds), mbPerSecond: round(sizeMiB * MiB / 1e6 / run.seconds, 1),
    requesterCpuSecondsPerGb: round(run.cpuSecondsPerGb), requesterKernelCpuSecondsPerGb: round(run.kernelSecondsPerGb), sourcesCpuSecondsPerGb: 0,
  })
  try {
    rows.push(row('writing the blob to a new file (bench process, 1 MiB writes)', writeNewFile(paths[0]!, sizeMiB)))
    rows.push(row('the same, a second file beside it', writeNewFile(paths[1]!, sizeMiB)))
    rmSync(paths[0]!)
    rows.push(row('the same, right after removing the first file', writeNewFile(paths[0]!, sizeMiB)))
  } finally {
    for (const path of paths) rmSync(path, { force: true })
  }
  return rows
}

/**
 * Writes and removes a scratch file of `sizeMiB`, so that the transfer measured next takes the
 * memory it touches (page cache for its copy, piece buffers) from memory just freed, as every
 * floor run does (each removes its file before the next): both sides of a ratio then pay this
 * VM the same. A requester pulling S touches about twice S (its copy, its piece buffers):
 * freeing only S was not enough (docs/benchmarks.md, issue 24's sixth pass). It is a race: a VM
 * whose balloon reports free pages to its host loses what was freed soon after.
 */
export function recyclePageCache(dir: string, sizeMiB: number): void {
  const path = join(dir, 'page-cache-recycled')
  try {
    writeNewFile(path, sizeMiB)
  } finally {
    rmSync(path, { force: true })
  }
}
