import { pino, type Logger, type DestinationStream } from 'pino'

export type { Logger }
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** The process's one structured JSON logger; components take `logger.child({ component })`. */
export function createLogger(level: LogLevel = 'info', destination?: DestinationStream): Logger {
  const options = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }
  return destination ? pino(options, destination) : pino(options)
}

export function componentLogger(logger: Logger, component: string): Logger {
  return logger.child({ component })
}
