import type { SignalOptions } from '../util/abort.js'
import { resolve } from 'node:path'
import type { CriClient } from './cri.js'
import { loadConfigFiles, majorVersion, settingsFromConfigFiles, settingsFromCriStatus, type ContainerdSettings } from './settings.js'
import { ShoalError } from '../util/errors.js'

export type Distribution = 'talos' | 'eks' | 'gke' | 'k3s' | 'generic'

export type ConfigProblem =
  | { kind: 'config-path-unset' }
  | { kind: 'config-path-mismatch'; expected: string; actual: string[] }
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
  const settings = fromStatus ?? settingsFromConfigFiles(await loadConfigFiles(init.configFile), majorVersion(version))
  return { version, settings }
}

export function findProblems(settings: ContainerdSettings, expectedConfigPath: string): ConfigProblem[] {
  const problems: ConfigProblem[] = []
  if (settings.configPaths.length === 0) {
    problems.push({ kind: 'config-path-unset' })
  } else if (!settings.configPaths.some((path) => resolve(path) === resolve(expectedConfigPath))) {
    problems.push({ kind: 'config-path-mismatch', expected: expectedConfigPath, actual: settings.configPaths })
  }
  if (settings.discardUnpackedLayers) problems.push({ kind: 'discard-unpacked-layers' })
  return problems
}

/** Throws ContainerdMisconfiguredError naming every problem and its fix. */
export function assertUsable(settings: ContainerdSettings, version: string, expectedConfigPath: string): void {
  const problems = findProblems(settings, expectedConfigPath)
  if (problems.length > 0) throw new ContainerdMisconfiguredError(problems, settings, version)
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
  for (const problem of problems) lines.push(`- ${describe(problem)}`, `  fix: ${fixFor(problem, distribution, majorVersion(version))}`)
  return lines.join('\n')
}

function describe(problem: ConfigProblem): string {
  switch (problem.kind) {
    case 'config-path-unset':
      return 'the CRI registry config_path is not set, so containerd ignores hosts.toml mirrors'
    case 'config-path-mismatch':
      return `containerd reads hosts.toml from ${problem.actual.join(':')}, but shoal is set to write them to ${problem.expected}`
    case 'discard-unpacked-layers':
      return 'discard_unpacked_layers = true: containerd deletes layers after unpacking, so this node has nothing to share'
  }
}

function fixFor(problem: ConfigProblem, distribution: Distribution, major: number): string {
  if (distribution === 'gke' && problem.kind !== 'config-path-mismatch') {
    return 'GKE configures containerd with the legacy registry.mirrors settings and no config_path, and its node configuration cannot change that; shoal cannot run on GKE node images'
  }
  if (problem.kind === 'config-path-mismatch') {
    const path = problem.actual[0] ?? ''
    return `run shoal with --containerd-registry-config-path=${path} (Helm value shoal.containerdRegistryConfigPath: ${path})`
  }
  if (distribution === 'talos') return talosFix(problem)
  if (distribution === 'eks' && problem.kind === 'discard-unpacked-layers') {
    return 'EKS AMIs enable it by default. Override it in the node user data (AL2023 nodeadm NodeConfig spec.containerd.config, AL2 /etc/eks/containerd/containerd-config.toml) with:\n' +
      indent(tomlSnippet(problem, major)) + '\n  then replace the nodes or restart containerd'
  }
  return `add to containerd's config.toml and restart containerd:\n${indent(tomlSnippet(problem, major))}`
}

function talosFix(problem: ConfigProblem): string {
  if (problem.kind === 'config-path-unset') {
    return 'Talos sets config_path to /etc/cri/conf.d/hosts; check that no machine config patch removed it'
  }
  return 'apply a machine config patch that creates /var/etc/cri/conf.d/20-shoal.part containing\n' +
    indent('[plugins."io.containerd.cri.v1.images"]\n  discard_unpacked_layers = false') + '\n  then reboot the nodes one by one (see docs/compatibility.md)'
}

function tomlSnippet(problem: ConfigProblem, major: number): string {
  const v3 = major >= 2
  if (problem.kind === 'discard-unpacked-layers') {
    return v3
      ? '[plugins."io.containerd.cri.v1.images"]\n  discard_unpacked_layers = false'
      : '[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = false'
  }
  return v3
    ? '[plugins."io.containerd.cri.v1.images".registry]\n  config_path = "/etc/containerd/certs.d"'
    : '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"'
}

function indent(text: string): string {
  return text.split('\n').map((line) => `    ${line}`).join('\n')
}
