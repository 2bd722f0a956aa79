import type { Logger } from 'pino'
import type { ConfigurationConfig } from '../config/commands.js'
import { CriClient } from '../containerd/cri.js'
import { configureMirrors } from '../containerd/mirror-config.js'
import { checkContainerd } from '../containerd/check.js'
import { ShoalError } from '../util/errors.js'

export const CONFIGURATION_CONTAINERD_WAIT_MS = 60_000

export class MissingMirrorTargetsError extends ShoalError {
  constructor() {
    super("--mirror-targets is required: the URL(s) at which this node's containerd reaches shoal, e.g. http://127.0.0.1:30020")
  }
}

/** `shoal configuration`: checks containerd, then writes hosts.toml files pointing at shoal. */
export async function runConfiguration(config: ConfigurationConfig, logger: Logger, signal: AbortSignal): Promise<void> {
  if (config.mirrorTargets.length === 0) throw new MissingMirrorTargetsError()
  if (config.verifyContainerdConfig) {
    const cri = new CriClient(config.containerdSock)
    try {
      await checkContainerd(cri, {
        configFile: config.containerdConfigFile,
        registryConfigPath: config.containerdRegistryConfigPath,
        deadlineMs: CONFIGURATION_CONTAINERD_WAIT_MS,
      }, logger, { signal })
    } finally {
      cri.close()
    }
  }
  const result = await configureMirrors({
    configPath: config.containerdRegistryConfigPath,
    registries: config.mirroredRegistries,
    mirrorTargets: config.mirrorTargets,
    resolveTags: config.resolveTags,
    prependExisting: config.prependExisting,
  })
  logger.info({ configPath: config.containerdRegistryConfigPath, ...result }, 'containerd now mirrors through shoal')
}
