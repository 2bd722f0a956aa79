import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const exec = promisify(execFile)

export async function ip(...args: string[]): Promise<string> {
  return (await exec('ip', args)).stdout
}

async function inNamespace(ns: string, ...command: string[]): Promise<void> {
  await exec('ip', ['netns', 'exec', ns, ...command])
}

/**
 * A layer-2 switch in its own namespace (`<prefix>sw`, bridge br0) and hosts attached to it,
 * each in its own namespace with eth0 addressed in 127.77.0.0/16. The loopback range works
 * across namespaces once each host's lo keeps only 127.0.0.1/32 and route_localnet is on.
 * Nothing is created in, or changed on, the host's own namespace.
 */
export class Switch {
  readonly namespace: string
  private readonly hosts: string[] = []

  constructor(readonly prefix: string) {
    this.namespace = `${prefix}sw`
  }

  async create(): Promise<void> {
    await ip('netns', 'add', this.namespace)
    await ip('-n', this.namespace, 'link', 'add', 'br0', 'type', 'bridge')
    await ip('-n', this.namespace, 'link', 'set', 'br0', 'up')
    await ip('-n', this.namespace, 'link', 'set', 'lo', 'up')
  }

  /** Creates `<prefix><name>` with address 127.77.0.<octet>; returns the namespace name. */
  async attach(name: string, octet: number): Promise<string> {
    const ns = `${this.prefix}${name}`
    const port = `v${octet}`
    await ip('netns', 'add', ns)
    this.hosts.push(ns)
    await ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', this.namespace)
    await ip('-n', this.namespace, 'link', 'set', port, 'master', 'br0')
    await ip('-n', this.namespace, 'link', 'set', port, 'up')
    await ip('-n', ns, 'link', 'set', 'lo', 'up')
    await ip('-n', ns, 'addr', 'del', '127.0.0.1/8', 'dev', 'lo')
    await ip('-n', ns, 'addr', 'add', '127.0.0.1/32', 'dev', 'lo')
    await inNamespace(ns, 'sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.eth0.route_localnet=1')
    await ip('-n', ns, 'addr', 'add', `127.77.0.${octet}/16`, 'dev', 'eth0')
    await ip('-n', ns, 'link', 'set', 'eth0', 'up')
    return ns
  }

  /** Caps a host's link in both directions (tc tbf on its eth0 and on its switch port). */
  async shape(ns: string, octet: number, rateMbit: number | undefined): Promise<void> {
    for (const [namespace, device] of [[ns, 'eth0'], [this.namespace, `v${octet}`]] as const) {
      await exec('tc', ['-n', namespace, 'qdisc', 'del', 'dev', device, 'root']).catch(() => {})
      if (rateMbit) await exec('tc', ['-n', namespace, 'qdisc', 'add', 'dev', device, 'root', 'tbf', 'rate', `${rateMbit}mbit`, 'burst', '256kb', 'latency', '50ms'])
    }
  }

  /** Kills whatever still runs in the namespaces, then deletes them. Safe to call twice. */
  async destroy(): Promise<void> {
    for (const ns of [...this.hosts, this.namespace]) await deleteNamespace(ns)
    this.hosts.length = 0
  }
}

export async function deleteNamespace(ns: string): Promise<void> {
  const pids = await ip('netns', 'pids', ns).catch(() => '')
  for (const pid of pids.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL')
    } catch {
      // already gone
    }
  }
  await ip('netns', 'del', ns).catch(() => {})
}

/** Namespaces left by an earlier run that crashed: `e2e-*` ones with nothing running in them. */
export async function removeStaleNamespaces(pattern: RegExp): Promise<string[]> {
  const names = (await ip('netns', 'list')).split('\n').map((line) => line.split(' ')[0]!).filter((name) => pattern.test(name))
  const removed: string[] = []
  for (const name of names) {
    if ((await ip('netns', 'pids', name).catch(() => 'busy')).trim() === '') {
      await ip('netns', 'del', name).catch(() => {})
      removed.push(name)
    }
  }
  return removed
}
