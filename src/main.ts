#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { Command } from 'commander'
import { CLEANUP_OPTIONS, CLEANUP_WAIT_OPTIONS, CONFIGURATION_OPTIONS, REGISTRY_OPTIONS, STATUS_OPTIONS } from './config/commands.js'
import { addOptions, resolveOptions, type OptionTable, type OptionValues } from './config/options.js'
import { createLogger, type Logger, type LogLevel } from './observe/logger.js'
import { runCleanup, runCleanupWait } from './commands/cleanup.js'
import { runConfiguration } from './commands/configuration.js'
import { runMetainfo } from './commands/metainfo.js'
import { runRegistry } from './commands/registry.js'
import { runStatus } from './commands/status.js'
import { describeError } from './util/errors.js'

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

type Action<T extends OptionTable> = (config: OptionValues<T>, logger: Logger, signal: AbortSignal) => Promise<void>

function command<T extends OptionTable>(program: Command, name: string, summary: string, table: T, action: Action<T>): void {
  const sub = program.command(name).summary(summary).description(summary).showHelpAfterError(`(shoal ${name} --help for usage)`)
  addOptions(sub, table)
  sub.action(async () => {
    const config = await resolveOptions(sub, table)
    const logger = createLogger((config as { logLevel?: LogLevel }).logLevel ?? 'info').child({ command: name })
    await runUntilSignalled(logger, (signal) => action(config, logger, signal))
  })
}

async function runUntilSignalled(logger: Logger, run: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController()
  const stop = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'stopping')
    controller.abort()
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  try {
    await run(controller.signal)
  } catch (err) {
    if (controller.signal.aborted && (err as Error).name === 'AbortError') return
    logger.fatal({ err }, 'failed')
    process.stderr.write(`shoal: ${describeError(err)}\n`)
    process.exitCode = 1
  }
}

const program = new Command('shoal')
  .description('Peer-to-peer OCI registry mirror for Kubernetes: containerd layers shared BitTorrent-style between nodes.\n' +
    'Every flag can also be set by an environment variable of the same name in upper case (--registry-addr: REGISTRY_ADDR).')
  .version(version)
  .showHelpAfterError('(add --help for usage)')

command(program, 'registry', 'run the node daemon: serve this node\'s content to containerd and peers', REGISTRY_OPTIONS,
  (config, logger, signal) => runRegistry(config, logger, signal, version))
command(program, 'configuration', 'check containerd and write hosts.toml files that mirror through shoal', CONFIGURATION_OPTIONS, runConfiguration)
command(program, 'cleanup', 'restore the hosts.toml files shoal replaced', CLEANUP_OPTIONS, runCleanup)
command(program, 'cleanup-wait', "wait until every node's cleanup pod is ready (the chart's post-delete Job)", CLEANUP_WAIT_OPTIONS, runCleanupWait)

const status = program.command('status').summary("show a node's swarm: transfers, peers, DHT, seeded blobs")
  .description("Reads a node's /stats (on its --metrics-addr) and prints it as tables; --json prints the document itself.")
  .showHelpAfterError('(shoal status --help for usage)')
addOptions(status, STATUS_OPTIONS)
status.action(async () => {
  try {
    await runStatus(await resolveOptions(status, STATUS_OPTIONS), new AbortController().signal)
  } catch (err) {
    process.stderr.write(`shoal status: ${describeError(err)}\n`)
    process.exitCode = 1
  }
})

program.command('metainfo').argument('<file>', 'any local file, e.g. a blob from containerd\'s content store')
  .summary('print the deterministic BitTorrent metainfo shoal computes for a file')
  .description('Prints digest, size, piece length, pieces and infohash, one "key: value" per line.')
  .action(async (file: string) => {
    try {
      await runMetainfo(file)
    } catch (err) {
      process.stderr.write(`shoal metainfo: ${describeError(err)}\n`)
      process.exitCode = 1
    }
  })

await program.parseAsync(process.argv)
