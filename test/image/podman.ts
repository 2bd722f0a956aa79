import { execFile, execFileSync } from 'node:child_process'
import { copyFile, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startProcess, type Managed } from '../support/processes.js'

/** The Dockerfile's base image, made locally by base-image.sh (no Docker Hub here). */
export const BASE_IMAGE = 'docker.io/library/node:22-bookworm-slim'
export const TEST_IMAGE = 'localhost/shoal:test'
/** crun, podman's default, cannot run on these machines' cgroup v1 hybrid hierarchy. */
const GLOBAL_FLAGS = ['--runtime', '/usr/sbin/runc', '--cgroup-manager', 'cgroupfs']
const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt'

export interface PodmanResult {
  code: number
  stdout: string
  stderr: string
}

/** One podman command to completion; never throws for a non-zero exit (the result says). */
export function podman(args: string[], timeoutMs = 120_000): Promise<PodmanResult> {
  return new Promise((resolve) => {
    execFile('podman', [...GLOBAL_FLAGS, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? typeof err.code === 'number' ? err.code : -1 : 0
      resolve({ code, stdout, stderr: stderr || (err && typeof err.code !== 'number' ? err.message : '') })
    })
  })
}

/** Like `podman`, but a non-zero exit is an error naming the command and its output. */
export async function podmanOk(args: string[], timeoutMs?: number): Promise<string> {
  const result = await podman(args, timeoutMs)
  if (result.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${result.code}: ${result.stderr}${result.stdout}`.slice(0, 4000))
  return result.stdout
}

/** Longest life of a test container: one a killed test run leaves behind is stopped by conmon. */
const CONTAINER_TIMEOUT_S = 900
const COMMAND_TIMEOUT_S = 120

/**
 * A one-shot command in the test image, to completion (killed after COMMAND_TIMEOUT_S). Without
 * a network unless `flags` give one: the tests never use podman's bridge networking, which would
 * load br_netfilter and add firewall chains on the host.
 */
export function podmanRunOnce(args: string[], flags: string[] = []): Promise<PodmanResult> {
  const network = flags.includes('--network') ? [] : ['--network', 'none']
  return podman(['run', '--rm', '--timeout', String(COMMAND_TIMEOUT_S), ...network, ...ulimitFlags(), ...flags, TEST_IMAGE, ...args], (COMMAND_TIMEOUT_S + 10) * 1000)
}

/** `podman run` in the foreground, stopped by SIGTERM to podman, which passes it to the container. */
export function podmanRun(name: string, args: string[], logPath: string): Managed {
  return startProcess(name, 'podman', [...GLOBAL_FLAGS, 'run', '--rm', '--timeout', String(CONTAINER_TIMEOUT_S), '--name', name, ...args], logPath)
}

/**
 * podman's default open-file limit exceeds these machines' hard limit, and runc then fails to
 * start the container ("error setting rlimit type 7").
 */
export function ulimitFlags(): string[] {
  hardNofile ??= Number(execFileSync('sh', ['-c', 'ulimit -Hn']).toString().trim())
  const nofile = Number.isFinite(hardNofile) ? Math.min(hardNofile, 16_384) : 16_384
  return ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', 'nproc=4096:4096']
}

let hardNofile: number | undefined

/**
 * npm inside the build must trust the CA this machine trusts (its network may intercept TLS).
 * The base image's /usr/local/etc is empty: a read-only bind over it gives npm a global npmrc
 * and leaves nothing in the image. Returns the `-v` flag.
 */
export async function npmCaMount(dir: string): Promise<string[]> {
  const etc = join(dir, 'npm-etc')
  await mkdir(etc, { recursive: true })
  await copyFile(HOST_CA_BUNDLE, join(etc, 'ca-certificates.crt'))
  await writeFile(join(etc, 'npmrc'), 'cafile=/usr/local/etc/ca-certificates.crt\n')
  return ['-v', `${etc}:/usr/local/etc:ro`]
}

/**
 * podman flags for a Kubernetes container securityContext (the chart's `securityContext` value).
 * A field it does not know fails the test, so a chart change cannot leave the test behind.
 */
export function securityContextFlags(context: Record<string, unknown>): string[] {
  const flags: string[] = []
  for (const [field, value] of Object.entries(context)) {
    if (field === 'runAsUser') flags.push('--user', String(value))
    else if (field === 'readOnlyRootFilesystem' && value === true) flags.push('--read-only', '--read-only-tmpfs=false')
    else if (field === 'allowPrivilegeEscalation' && value === false) flags.push('--security-opt', 'no-new-privileges')
    else if (field === 'capabilities') flags.push(...capabilityFlags(value as { drop?: string[]; add?: string[] }))
    else throw new Error(`securityContext.${field} = ${JSON.stringify(value)}: the image test does not know how to run it`)
  }
  return flags
}

function capabilityFlags(capabilities: { drop?: string[]; add?: string[] }): string[] {
  return [...(capabilities.drop ?? []).flatMap((cap) => ['--cap-drop', cap]), ...(capabilities.add ?? []).flatMap((cap) => ['--cap-add', cap])]
}

/** `-v host:container[:ro]` with the same path inside as outside, as a hostPath volume mounts it. */
export function hostPath(path: string, readOnly: boolean): string[] {
  return ['-v', `${path}:${path}${readOnly ? ':ro' : ''}`]
}

let built: Promise<void> | undefined

/**
 * Builds the Dockerfile unchanged into TEST_IMAGE, once per test process (a second build is a
 * cache hit), from the local base image, and prints how long it took and how large it is.
 */
export function buildTestImage(repo: string, dir: string): Promise<void> {
  built ??= (async () => {
    if ((await podman(['image', 'exists', BASE_IMAGE])).code !== 0) {
      throw new Error(`no local ${BASE_IMAGE}: run test/image/base-image.sh (npm run test:image does)`)
    }
    const started = performance.now()
    // The host's network for RUN steps (npm ci), not podman's bridge (see podmanRunOnce).
    await podmanOk(['build', '--pull=never', '--network', 'host', '-f', join(repo, 'Dockerfile'), ...await npmCaMount(dir), ...ulimitFlags(), '-t', TEST_IMAGE, repo], 20 * 60_000)
    const size = Number(await podmanOk(['image', 'inspect', TEST_IMAGE, '--format', '{{.Size}}']))
    process.stdout.write(`# ${TEST_IMAGE} built in ${((performance.now() - started) / 1000).toFixed(1)} s: ${(size / 1e6).toFixed(1)} MB\n`)
  })()
  return built
}
