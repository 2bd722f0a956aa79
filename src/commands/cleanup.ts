import type { Logger } from 'pino'
import type { CleanupConfig } from '../config/commands.js'
import { restoreMirrors } from '../containerd/mirror-config.js'

/** `shoal cleanup`: restores containerd's registry config path from `_backup/`. */
export async function runCleanup(config: CleanupConfig, logger: Logger): Promise<void> {
  const result = await restoreMirrors(config.containerdRegistryConfigPath)
  if (result.restored) logger.info({ configPath: config.containerdRegistryConfigPath, changed: result.changed }, 'restored the registry configuration shoal replaced')
  else logger.info({ configPath: config.containerdRegistryConfigPath }, 'nothing to restore: no _backup directory')
}
