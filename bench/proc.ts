import { readFile } from 'node:fs/promises'

const CLOCK_TICKS = 100

/** CPU seconds a process has used so far in user space and in the kernel, from /proc. */
export async function cpuTimes(pid: number): Promise<{ user: number; kernel: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { user: Number(fields[11]) / CLOCK_TICKS, kernel: Number(fields[12]) / CLOCK_TICKS }
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export async function cpuSeconds(pid: number): Promise<number> {
  const { user, kernel } = await cpuTimes(pid)
  return user + kernel
}

/** Peak resident set size (VmHWM) of a process in bytes. */
export async function peakRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /VmHWM:\s+(\d+) kB/.exec(status)
  return match ? Number(match[1]) * 1024 : 0
}

/** Resident memory of a process in MiB: anonymous (heap, buffers) and file-backed (the node binary's code, shared). */
export async function rssPartsMiB(pid: number): Promise<{ rss: number; anon: number; file: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0)
  const mib = (value: number): number => Math.round(value / 1024)
  return { rss: mib(kb('VmRSS')), anon: mib(kb('RssAnon')), file: mib(kb('RssFile') + kb('RssShmem')) }
}

/** The node process under a wrapper (ip netns exec, strace): the deepest descendant named node. */
export async function nodePid(pid: number): Promise<number> {
  try {
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number)
    for (const child of children) {
      const found = await nodePid(child)
      if (found) return found
    }
  } catch {
    return pid
  }
  return pid
}
