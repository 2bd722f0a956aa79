import type { SignalOptions } from '../util/abort.js'
import { resolve } from 'node:path'
import type { CriClient } from './cri.js'
import { criPullPath, parseContainerdVersion, type PullPath } from './pull-path.js'
import { loadConfigFiles, settingsFromConfigFiles, settingsFromCriStatus, type ContainerdSettings } from './settings.js'
import { ShoalError } from '../util/errors.js'

export type Distribution = 'talos' | 'eks' | 'gke' | 'k3s' | 'generic'

export type ConfigProblem =
  | { kind: 'config-path-unset' }
  | { kind: 'config-path-mismatch'; expected: string; actual: string[] }
  | { kind: 'config-path-list-ignored'; expected: string; actual: string[]; why: string; onceLayersKept: boolean }
  | { kind: 'discard-unpacked-layers' }

export class ContainerdMisconfiguredError extends ShoalError {
  constructor(readonly problems: ConfigProblem[], readonly settings: ContainerdSettings, readonly containerdVersion: string) {
    super(explainProblems(problems, settings, containerdVersion))
  }
}

export interface InspectInit {
  /** containerd's main config file, read when CRI status does not report the settings (2.x). */
  configFile: string
}

/** Reads containerd's version and the settings that matter to shoal. */
export async function inspectContainerd(cri: CriClient, init: InspectInit, options: SignalOptions = {}): Promise<{ version: string; settings: ContainerdSettings }> {
  const version = (await cri.version(options)).runtime_version
  const fromStatus = settingsFromCriStatus(await cri.statusInfo(options))
  const settings = fromStatus ?? settingsFromConfigFiles(await loadConfigFiles(init.configFile), parseContainerdVersion(version).major)
  return { version, settings }
}

export function findProblems(settings: ContainerdSettings, expectedConfigPath: string, version: string): ConfigProblem[] {
  const problems: ConfigProblem[] = []
  const pull = criPullPath(settings, version)
  if (settings.configPaths.length === 0) {
    problems.push({ kind: 'config-path-unset' })
  } else if (pull.kind === 'transfer' && settings.configPaths.length > 1) {
    problems.push({ kind: 'config-path-list-ignored', expected: expectedConfigPath, actual: settings.configPaths, why: pull.reason, onceLayersKept: settings.discardUnpackedLayers })
  } else if (!settings.configPaths.some((path) => resolve(path) === resolve(expectedConfigPath))) {
    problems.push({ kind: 'config-path-mismatch', expected: expectedConfigPath, actual: settings.configPaths })
  }
  if (settings.discardUnpackedLayers) problems.push({ kind: 'discard-unpacked-layers' })
  return problems
}

/** Throws ContainerdMisconfiguredError naming every problem and its fix; else returns how CRI will pull. */
export function assertUsable(settings: ContainerdSettings, version: string, expectedConfigPath: string): PullPath {
  const problems = findProblems(settings, expectedConfigPath, version)
  if (problems.length > 0) throw new ContainerdMisconfiguredError(problems, settings, version)
  return criPullPath(settings, version)
}

export function detectDistribution(settings: ContainerdSettings): Distribution {
  const paths = [...settings.files, ...settings.configPaths]
  if (paths.some((path) => path.startsWith('/etc/cri/'))) return 'talos'
  if (paths.some((path) => path.includes('/rancher/k3s/'))) return 'k3s'
  if (/\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/.test(settings.sandboxImage ?? '') || paths.some((path) => path.startsWith('/etc/eks/'))) return 'eks'
  if (settings.legacyMirrors && /(^|\.)gke\.gcr\.io\/|gcr\.io\/gke-release|pkg\.dev\//.test(settings.sandboxImage ?? '')) return 'gke'
  return 'generic'
}

export function explainProblems(problems: ConfigProblem[], settings: ContainerdSettings, version: string): string {
  const distribution = detectDistribution(settings)
  const where = settings.source === 'cri-status' ? 'CRI status' : settings.files.length ? settings.files.join(', ') : 'built-in defaults'
  const lines = [`containerd ${version} is not configured for shoal (settings read from ${where}):`]
  for (const problem of problems) lines.push(`- ${describe(problem, version)}`, `  fix: ${fixFor(problem, distribution, parseContainerdVersion(version).major)}`)
  return lines.join('\n')
}

function describe(problem: ConfigProblem, version: string): string {
  switch (problem.kind) {
    case 'config-path-unset':
      return 'the CRI registry config_path is not set, so containerd ignores hosts.toml mirrors'
    case 'config-path-mismatch':
      return `containerd reads hosts.toml from ${problem.actual.join(':')}, but shoal is set to write them to ${problem.expected}`
    case 'config-path-list-ignored':
      return `containerd ${version} pulls images for Kubernetes through its transfer service${problem.onceLayersKept ? ' once discard_unpacked_layers is false' : ''} (${problem.why}), ` +
        `which reads config_path as one directory: "${problem.actual.join(':')}" names none, so containerd ignores every hosts.toml, shoal's too, without a log line`
    case 'discard-unpacked-layers':
      return 'discard_unpacked_layers = true: containerd deletes layers after unpacking, so this node has nothing to share'
  }
}

function fixFor(problem: ConfigProblem, distribution: Distribution, major: number): string {
  if (distribution === 'gke' && (problem.kind === 'config-path-unset' || problem.kind === 'discard-unpacked-layers')) {
    return 'GKE configures containerd with the legacy registry.mirrors settings and no config_path, and its node configuration cannot change that; shoal cannot run on GKE node images'
  }
  if (problem.kind === 'config-path-mismatch') {
    const path = problem.actual[0] ?? ''
    return `run shoal with --containerd-registry-config-path=${path} (Helm value shoal.containerdRegistryConfigPath: ${path})`
  }
  if (distribution === 'talos') return talosFix(problem, major)
  if (distribution === 'eks' && problem.kind !== 'config-path-unset') {
    const why = problem.kind === 'discard-unpacked-layers' ? 'EKS AMIs enable it by default. ' : 'EKS AMIs set this list. '
    return `${why}Override it in the node user data (AL2023 nodeadm NodeConfig spec.containerd.config, AL2 /etc/eks/containerd/containerd-config.toml) with:\n` +
      snippets(problem, major) + '\n  then replace the nodes or restart containerd'
  }
  return `add to containerd's config.toml and restart containerd:\n${snippets(problem, major)}`
}

/** The TOML that fixes a problem, indented; alternatives joined by "or". */
function snippets(problem: ConfigProblem, major: number): string {
  return tomlSnippets(problem, major).map(indent).join('\n  or\n')
}

function talosFix(problem: ConfigProblem, major: number): string {
  if (problem.kind === 'config-path-unset') {
    return 'Talos sets config_path to /etc/cri/conf.d/hosts; check that no machine config patch removed it'
  }
  return 'apply a machine config patch that creates /var/etc/cri/conf.d/20-shoal.part containing\n' +
    snippets(problem, major) + '\n  then reboot the nodes one by one (see docs/compatibility.md)'
}

const V3_IMAGES = 'io.containerd.cri.v1.images'
const V2_CRI = 'io.containerd.grpc.v1.cri'

function header(plugin: string, table?: string): string {
  return `[plugins."${plugin}"${table ? `.${table}` : ''}]`
}

function tomlSnippets(problem: ConfigProblem, major: number): string[] {
  const v3 = major >= 2
  switch (problem.kind) {
    case 'discard-unpacked-layers':
      return [`${v3 ? header(V3_IMAGES) : header(V2_CRI, 'containerd')}\n  discard_unpacked_layers = false`]
    case 'config-path-list-ignored':
      return [`${header(V3_IMAGES, 'registry')}\n  config_path = "${problem.expected}"`, `${header(V3_IMAGES)}\n  use_local_image_pull = true`]
    default:
      return [`${header(v3 ? V3_IMAGES : V2_CRI, 'registry')}\n  config_path = "/etc/containerd/certs.d"`]
  }
}

function indent(text: string): string {
  return text.split('\n').map((line) => `    ${line}`).join('\n')
}
