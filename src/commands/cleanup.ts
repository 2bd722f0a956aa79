import { once } from 'node:events'
import { promises as dns } from 'node:dns'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { CleanupConfig, CleanupWaitConfig } from '../config/commands.js'
import { InvalidValueError } from '../config/values.js'
import { restoreMirrors } from '../containerd/mirror-config.js'
import { HttpServer } from '../net/http-server.js'
import { DnsBootstrap } from '../routing/bootstrap.js'

const WAIT_POLL_MS = 2000
const PROBE_TIMEOUT_MS = 2000

/** `shoal cleanup`: restores containerd's registry config path from `_backup/`; with --probe-addr, then reports ready until stopped. */
export async function runCleanup(config: CleanupConfig, logger: Logger, signal: AbortSignal): Promise<void> {
  const result = await restoreMirrors(config.containerdRegistryConfigPath)
  if (result.restored) logger.info({ configPath: config.containerdRegistryConfigPath, changed: result.changed }, 'restored the registry configuration shoal replaced')
  else logger.info({ configPath: config.containerdRegistryConfigPath }, 'nothing to restore: no _backup directory')
  if (!config.probeAddr || signal.aborted) return
  const server = new HttpServer({ logger }, { address: config.probeAddr, listener: (req, res) => {
    res.statusCode = req.url === '/readyz' ? 200 : 404
    res.end()
  } })
  await server.start()
  try {
    await once(signal, 'abort')
  } finally {
    await server.stop()
  }
}

/**
 * `shoal cleanup-wait`: the chart's post-delete Job. Waits until every pod behind the headless
 * Service answers /readyz, with the same set of pods on two polls in a row.
 */
export async function runCleanupWait(config: CleanupWaitConfig, logger: Logger, signal: AbortSignal): Promise<void> {
  if (!config.dnsDomain) throw new InvalidValueError('--dns-domain is required: the headless Service of the cleanup DaemonSet')
  const pods = new DnsBootstrap(config.dnsDomain, Number(config.probePort), lookup4)
  const deadline = Date.now() + config.timeout
  let previous = ''
  while (Date.now() < deadline && !signal.aborted) {
    const addresses = await cleanupPods(pods)
    const ready = await Promise.all(addresses.map((address) => probe(address, config.probePort, signal)))
    const key = addresses.sort().join(',')
    logger.info({ pods: addresses.length, ready: ready.filter(Boolean).length }, 'waiting for cleanup on every node')
    if (addresses.length > 0 && ready.every(Boolean) && key === previous) return
    previous = key
    await sleep(WAIT_POLL_MS, undefined, { signal }).catch(() => undefined)
  }
  if (!signal.aborted) throw new Error(`cleanup did not finish on every node within ${config.timeout / 1000} s`)
}

/** The A records of a name, /etc/hosts included (getaddrinfo, as the Job's resolver sees it). */
async function lookup4(name: string): Promise<string[]> {
  return (await dns.lookup(name, { all: true, family: 4 })).map((entry) => entry.address)
}

/** The cleanup pods' addresses; none yet while DNS is temporarily failing (EAI_AGAIN). */
async function cleanupPods(pods: DnsBootstrap): Promise<string[]> {
  try {
    return (await pods.addresses()).map((pod) => pod.host)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EAI_AGAIN') return []
    throw err
  }
}

async function probe(address: string, port: string, signal: AbortSignal): Promise<boolean> {
  const response = await fetch(`http://${address}:${port}/readyz`, { signal: AbortSignal.any([signal, AbortSignal.timeout(PROBE_TIMEOUT_MS)]) }).catch(() => undefined)
  return response?.status === 200
}
