import { join } from 'node:path'
import { freeTcpAndUdpPort } from '../support/cluster.js'
import { eventually } from '../support/eventually.js'
import { freePort, freeUdpPort } from '../support/ports.js'
import { TEST_IMAGE, podman, podmanRun, ulimitFlags } from './podman.js'
import type { Managed } from '../support/processes.js'

export interface ImageDaemon {
  name: string
  /** The container's name, for `podman exec`. */
  container: string
  registryUrl: string
  metricsUrl: string
  process: Managed
  /** SIGTERM (podman passes it on), then the container's exit code. */
  stop(): Promise<number | null>
}

export interface ImageDaemonInit {
  /** Default: a free one. */
  registryPort?: number
  /** podman flags: user, capabilities, read-only root… */
  flags?: string[]
  /** `-v` flags. */
  mounts: string[]
  /** Flags of `shoal registry` besides its addresses. */
  args: string[]
  waitReady?: boolean
}

/**
 * `shoal registry` in the image, on the host's network (loopback addresses only), its output in
 * `<dir>/<name>.log`. The container is removed when it stops, and forcibly if the test gave up.
 */
export async function startDaemon(dir: string, name: string, init: ImageDaemonInit): Promise<ImageDaemon> {
  const host = '127.0.0.1'
  const [registryPort, metricsPort] = [init.registryPort ?? await freePort(host), await freePort(host)]
  const p2pPort = await freeTcpAndUdpPort(host, await freeUdpPort([host]))
  const container = `shoal-image-test-${process.pid}-${name}`
  const args = ['registry', '--registry-addr', `${host}:${registryPort}`, '--metrics-addr', `${host}:${metricsPort}`,
    '--p2p-addr', `${host}:${p2pPort}`, ...(init.args.some((arg) => arg.startsWith('--upstream-fetch')) ? [] : ['--upstream-fetch=false']), ...init.args]
  const managed = podmanRun(container, ['--network', 'host', ...ulimitFlags(), ...init.flags ?? [], ...init.mounts, TEST_IMAGE, ...args], join(dir, `${name}.log`))
  const daemon: ImageDaemon = {
    name, container, registryUrl: `http://${host}:${registryPort}`, metricsUrl: `http://${host}:${metricsPort}`, process: managed,
    async stop() {
      await managed.stop()
      await podman(['rm', '--force', '--ignore', container])
      return managed.child.exitCode
    },
  }
  const outcome = await eventually(`${name} ${init.waitReady === false ? 'listening' : 'ready'}`, async () => {
    if (managed.child.exitCode !== null) return 'exited'
    const probe = await fetch(`${daemon.registryUrl}/readyz`)
    return (init.waitReady === false || probe.status === 200) && 'up'
  }, 60_000, 200)
  if (outcome === 'exited') throw new Error(`${name} exited with ${managed.child.exitCode}; see ${managed.logPath}`)
  return daemon
}
