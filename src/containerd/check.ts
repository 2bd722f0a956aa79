import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { SignalOptions } from '../util/abort.js'
import type { CriClient } from './cri.js'
import { assertUsable, inspectContainerd } from './verify.js'

export const CONTAINERD_RETRY_MAX_MS = 5_000

/**
 * Waits until containerd answers (it may be restarting), then checks its configuration.
 * Throws ContainerdMisconfiguredError at once when it answers with settings shoal cannot use.
 */
export async function checkContainerd(cri: CriClient, init: { configFile: string; registryConfigPath: string; deadlineMs?: number },
  logger: Logger, options: SignalOptions = {}): Promise<string> {
  const { signal } = options
  const deadline = init.deadlineMs === undefined ? Infinity : Date.now() + init.deadlineMs
  let wait = 250
  for (;;) {
    signal?.throwIfAborted()
    try {
      const { version, settings } = await inspectContainerd(cri, { configFile: init.configFile }, { signal })
      const pull = assertUsable(settings, version, init.registryConfigPath)
      logger.info({ containerd: version, configPaths: settings.configPaths, source: settings.source, pull: pull.kind, pullReason: pull.reason }, 'containerd configuration is usable')
      return version
    } catch (err) {
      if (!isUnreachable(err) || Date.now() + wait > deadline) throw err
      logger.warn({ socket: cri.socket, err, retryInMs: wait }, 'containerd is not reachable yet')
      await sleep(wait, undefined, { signal })
      wait = Math.min(wait * 2, CONTAINERD_RETRY_MAX_MS)
    }
  }
}

function isUnreachable(err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  // gRPC UNAVAILABLE (14) and DEADLINE_EXCEEDED (4): containerd is down or restarting.
  return code === 14 || code === 4
}
