import { Writable } from 'node:stream'
import type { ContentProvider } from '../../src/content/provider.js'
import { HttpServer } from '../../src/net/http-server.js'
import { createLogger } from '../../src/observe/logger.js'
import { createMetricsRegistry } from '../../src/observe/metrics.js'
import { createRegistryApp } from '../../src/registry/app.js'

export const silentLogger = createLogger('silent')

/** Captures log lines in memory, for tests that assert what was (not) logged. */
export function memoryLogger(level: 'debug' | 'info' = 'debug') {
  const lines: Record<string, unknown>[] = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      done()
    },
  })
  return { logger: createLogger(level, sink), lines }
}

export interface RunningRegistry {
  url: string
  port: number
  metrics: ReturnType<typeof createMetricsRegistry>
  stop(): Promise<void>
}

/** The registry app on an ephemeral loopback port. */
export async function startRegistryApp(content: ContentProvider, init: { resolveTags?: boolean; logger?: ReturnType<typeof createLogger> } = {}): Promise<RunningRegistry> {
  const metrics = createMetricsRegistry()
  const logger = init.logger ?? silentLogger
  const app = createRegistryApp({ content, logger, metrics: metrics.metrics, ready: () => true }, { resolveTags: init.resolveTags ?? true })
  const server = new HttpServer({ logger }, { address: { host: '127.0.0.1', port: 0 }, listener: app.callback() })
  const address = await server.start()
  return { url: `http://127.0.0.1:${address.port}`, port: address.port, metrics, stop: () => server.stop() }
}
