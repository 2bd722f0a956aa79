import { CLEANUP_OPTIONS, CLEANUP_WAIT_OPTIONS, CONFIGURATION_OPTIONS, REGISTRY_OPTIONS, STATUS_OPTIONS } from '../../src/config/commands.js'
import { flagName, type OptionTable } from '../../src/config/options.js'
import type { K8sObject } from './render.js'

export interface Container {
  name: string
  image?: string
  args?: string[]
  env?: { name: string }[]
  ports?: { name?: string; containerPort: number; hostPort?: number; protocol?: string }[]
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[]
  readinessProbe?: { httpGet: { path: string; port: string | number } }
  livenessProbe?: { httpGet: { path: string; port: string | number } }
  startupProbe?: { httpGet: { path: string; port: string | number } }
  resources?: { limits?: { memory?: string } }
}

export interface PodSpec {
  containers: Container[]
  initContainers?: Container[]
  volumes?: { name: string; hostPath?: { path: string } }[]
  priorityClassName?: string
  tolerations?: unknown[]
}

export const COMMAND_TABLES: Record<string, OptionTable> = {
  registry: REGISTRY_OPTIONS, configuration: CONFIGURATION_OPTIONS, cleanup: CLEANUP_OPTIONS, 'cleanup-wait': CLEANUP_WAIT_OPTIONS, status: STATUS_OPTIONS,
}
/** What Kubernetes substitutes for $(VAR) from the downward API. */
const DOWNWARD = { NODE_IP: '10.0.0.1', POD_IP: '10.244.0.7' }

export function containers(objects: K8sObject[]): Container[] {
  return objects.filter((object) => object.kind === 'DaemonSet' || object.kind === 'Job').flatMap((object) => {
    const spec = (object.spec as { template: { spec: PodSpec } }).template.spec
    return [...(spec.initContainers ?? []), ...spec.containers]
  })
}

/** `--flag=value` arguments after the command, by flag name. */
export function flagsOf(container: Container): Map<string, string> {
  const flags = new Map<string, string>()
  for (const arg of (container.args ?? []).slice(1)) {
    const match = /^--([a-z0-9-]+)=(.*)$/s.exec(arg)
    if (!match) throw new Error(`${container.name}: argument ${JSON.stringify(arg)} is not --flag=value`)
    flags.set(match[1]!, match[2]!)
  }
  return flags
}

export function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1))
}

/** Parses a container's arguments with shoal's own option tables, as the binary would. */
export function parseWithCli(container: Container): void {
  const command = container.args?.[0] ?? ''
  const table = COMMAND_TABLES[command]
  if (!table) throw new Error(`${container.name}: ${JSON.stringify(command)} is not a shoal command`)
  for (const [flag, raw] of flagsOf(container)) {
    const entry = Object.entries(table).find(([key]) => flagName(key) === flag)
    if (!entry) throw new Error(`--${flag} is not a flag of shoal ${command}`)
    const value = raw.replace(/\$\((\w+)\)/g, (_, name: keyof typeof DOWNWARD) => DOWNWARD[name] ?? `$(${name})`)
    try {
      entry[1].parse(value)
    } catch (err) {
      throw new Error(`shoal ${command} --${flag}=${value}: ${(err as Error).message}`)
    }
  }
}
