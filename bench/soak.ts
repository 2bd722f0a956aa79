/**
 * Soak: 4 nodes on loopback for a bounded time. Nodes 1–3 hold every blob; node 4 pulls them
 * one after another, round robin, without end. First a healthy phase gives the baseline pull
 * times; then, every interval, a random holder is stopped (SIGSTOP), continued, killed (SIGKILL)
 * or restarted, always leaving at least one holder running. Every pull is checked against its
 * digest. RSS and descriptors of every daemon are sampled throughout.
 *
 *   npm run bench -- soak [--minutes 20] [--interval-s 30] [--blobs 6] [--blob-mib 48]
 */
import { randomInt } from 'node:crypto'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLoopbackCluster, stopCluster, type LoopbackNode } from '../test/support/cluster.js'
import { fdCount, pullBlob, rssMiB } from '../test/support/faults.js'
import { buildImage, type TestImage } from '../test/support/images.js'
import { removeTestDir } from '../test/support/processes.js'

export interface SoakInit {
  minutes: number
  intervalS: number
  blobs: number
  blobMiB: number
}

type HolderState = 'running' | 'stopped' | 'dead'
type Action = 'stop' | 'continue' | 'kill' | 'restart'

export interface PullRecord { at: number; phase: 'healthy' | 'chaos'; ms: number; status: number; ok: boolean; wrongBytes: boolean; error?: string }
export interface Sample { at: number; node: number; rssMiB: number; fds: number }
export interface ChaosEvent { at: number; node: number; action: Action }

export interface SoakResult {
  pulls: PullRecord[]
  samples: Sample[]
  events: ChaosEvent[]
}

const HEALTHY_ROUNDS = 2
const SAMPLE_MS = 5_000
const ACTIONS: Record<HolderState, Action[]> = { running: ['stop', 'kill'], stopped: ['continue', 'kill'], dead: ['restart'] }

export async function runSoak(init: SoakInit): Promise<SoakResult> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-bench-soak-'))
  const images: TestImage[] = Array.from({ length: init.blobs }, (_, i) =>
    buildImage({ registry: 'registry.test', repository: `soak/blob-${i}`, tag: 'v1', layerSizes: [init.blobMiB * 2 ** 20] }))
  const blobs = images.map((image) => ({ repository: image.repository, digest: image.layers[0]!.digest }))
  const result: SoakResult = { pulls: [], samples: [], events: [] }
  let nodes: LoopbackNode[] = []
  const states: HolderState[] = ['running', 'running', 'running']
  const started = Date.now()
  const at = (): number => Date.now() - started
  try {
    nodes = await startLoopbackCluster({ dir, base: 230, contents: [images, images, images, []],
      // A finished download is dropped soon, so every pull of a blob is a real transfer.
      args: (index) => index === 3 ? ['--download-linger', '1s', '--peer-idle-timeout', '4s'] : [] })
    const sampler = setInterval(() => sample(nodes, states, at(), result.samples), SAMPLE_MS)
    try {
      sample(nodes, states, at(), result.samples)
      const requester = nodes[3]!
      let next = 0
      const pullOnce = async (phase: PullRecord['phase']): Promise<void> => {
        const blob = blobs[next++ % blobs.length]!
        const pullStarted = at()
        try {
          const pulled = await pullBlob(requester, blob.repository, blob.digest)
          const ok = pulled.status === 200 && pulled.digest === blob.digest
          result.pulls.push({ at: pullStarted, phase, ms: Math.round(pulled.ms), status: pulled.status, ok, wrongBytes: pulled.status === 200 && pulled.digest !== blob.digest })
        } catch (err) {
          result.pulls.push({ at: pullStarted, phase, ms: at() - pullStarted, status: 0, ok: false, wrongBytes: false, error: (err as Error).message })
        }
      }
      for (let i = 0; i < HEALTHY_ROUNDS * blobs.length; i++) await pullOnce('healthy')
      const deadline = started + init.minutes * 60_000
      let chaosAt = Date.now()
      while (Date.now() < deadline) {
        if (Date.now() >= chaosAt) {
          await chaos(nodes, states, at(), result.events)
          chaosAt = Date.now() + init.intervalS * 1000
        }
        await pullOnce('chaos')
      }
      sample(nodes, states, at(), result.samples)
    } finally {
      clearInterval(sampler)
      for (const [index, state] of states.entries()) if (state === 'stopped') process.kill(nodes[index]!.shoal.process.child.pid!, 'SIGCONT')
    }
  } finally {
    await stopCluster(nodes)
    await removeTestDir(dir)
  }
  return result
}

/** One random action on one random holder; the last running holder is never stopped or killed. */
async function chaos(nodes: LoopbackNode[], states: HolderState[], now: number, events: ChaosEvent[]): Promise<void> {
  const running = states.filter((state) => state === 'running').length
  const choices = states.flatMap((state, index) => ACTIONS[state].filter(() => running > 1 || state !== 'running').map((action) => ({ index, action })))
  const { index, action } = choices[randomInt(choices.length)]!
  const node = nodes[index]!
  const pid = node.shoal.process.child.pid!
  if (action === 'stop') process.kill(pid, 'SIGSTOP')
  if (action === 'continue') process.kill(pid, 'SIGCONT')
  if (action === 'kill') {
    process.kill(pid, 'SIGKILL')
    await node.shoal.stop()
  }
  // Not waiting for readiness: with its bootstrap peer frozen a node is rightly not ready yet.
  if (action === 'restart') await node.relaunch({ waitReady: false })
  states[index] = action === 'stop' ? 'stopped' : action === 'kill' ? 'dead' : 'running'
  events.push({ at: now, node: index + 1, action })
}

function sample(nodes: LoopbackNode[], states: HolderState[], now: number, samples: Sample[]): void {
  for (const node of nodes) {
    if (states[node.index] === 'dead' || node.shoal.process.child.exitCode !== null) continue
    try {
      samples.push({ at: now, node: node.index + 1, rssMiB: Math.round(rssMiB(node)), fds: fdCount(node) })
    } catch {
      // the process ended between the check and the read
    }
  }
}
