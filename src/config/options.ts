import { readFile } from 'node:fs/promises'
import { InvalidArgumentError, Option, type Command } from 'commander'
import { parse as parseToml } from 'smol-toml'
import { InvalidValueError, parseBoolean, splitList } from './values.js'
import { ShoalError } from '../util/errors.js'

/**
 * One setting: a flag `--kebab-case` of its key, the same name upper-cased as an environment
 * variable, and a key of the `--config-file` TOML. Precedence: flag, environment, file, default.
 */
export interface OptionSpec<T> {
  description: string
  default: T
  /** How the default reads in --help, when `String(default)` would not. */
  defaultText?: string
  /** Placeholder in --help, e.g. `<addr>`; booleans have none. */
  argument?: string
  parse: (raw: string) => T
  /** Repeatable, and a single value may hold a comma- or space-separated list. */
  list?: boolean
  /** The environment variable, when the upper-cased name would be too generic; null: none. */
  env?: string | null
}

export type OptionTable = Record<string, OptionSpec<unknown>>
export type OptionValues<T extends OptionTable> = { [K in keyof T]: T[K] extends OptionSpec<infer V> ? V : never }

export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)
}

export function envName(key: string): string {
  return flagName(key).replace(/-/g, '_').toUpperCase()
}

export class ConfigFileError extends ShoalError {
  constructor(path: string, why: string) {
    super(`config file ${path}: ${why}`)
  }
}

export const CONFIG_FILE_KEY = 'configFile'

/** Adds every option of the table to a commander command, plus `--config-file`. */
export function addOptions(command: Command, table: OptionTable): Command {
  for (const [key, spec] of Object.entries(table)) {
    const argument = spec.argument === undefined ? '[bool]' : spec.list ? `${spec.argument.slice(0, -1)}...>` : spec.argument
    const option = new Option(`--${flagName(key)} ${argument}`, `${spec.description} (default: ${defaultText(spec)})`)
      .argParser((raw: string, previous: unknown) => parseArgument(spec, raw, previous))
    if (spec.env !== null) option.env(spec.env ?? envName(key))
    if (spec.argument === undefined) option.preset('true')
    command.addOption(option)
  }
  command.addOption(new Option('--config-file <path>', 'TOML file with any of these settings, keyed by flag name (e.g. registry-addr = ":5000")')
    .env(envName(CONFIG_FILE_KEY)))
  return command
}

function parseArgument(spec: OptionSpec<unknown>, raw: string, previous: unknown): unknown {
  try {
    if (!spec.list) return spec.parse(raw)
    const items = spec.parse(raw) as unknown[]
    return Array.isArray(previous) ? [...previous, ...items] : items
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
}

function defaultText(spec: OptionSpec<unknown>): string {
  if (spec.defaultText !== undefined) return spec.defaultText
  if (Array.isArray(spec.default)) return spec.default.length ? spec.default.join(',') : 'none'
  return spec.default === '' ? 'none' : String(spec.default)
}

/** The command's settings with the config file and defaults applied. Throws on bad file content. */
export async function resolveOptions<T extends OptionTable>(command: Command, table: T): Promise<OptionValues<T>> {
  const given = command.opts() as Record<string, unknown>
  const fromFile = typeof given[CONFIG_FILE_KEY] === 'string' ? await readConfigFile(given[CONFIG_FILE_KEY] as string, table) : {}
  const values: Record<string, unknown> = {}
  for (const [key, spec] of Object.entries(table)) {
    values[key] = given[key] !== undefined ? given[key] : key in fromFile ? fromFile[key] : spec.default
  }
  return values as OptionValues<T>
}

async function readConfigFile(path: string, table: OptionTable): Promise<Record<string, unknown>> {
  let document: Record<string, unknown>
  try {
    document = parseToml(await readFile(path, 'utf8')) as Record<string, unknown>
  } catch (err) {
    throw new ConfigFileError(path, (err as Error).message.split('\n')[0] ?? 'unreadable')
  }
  const byFlag = new Map(Object.keys(table).map((key) => [flagName(key), key]))
  const values: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(document)) {
    const key = byFlag.get(name)
    if (!key) throw new ConfigFileError(path, `unknown setting ${JSON.stringify(name)} for this command`)
    try {
      values[key] = table[key]!.parse(tomlValueAsText(value))
    } catch (err) {
      throw new ConfigFileError(path, `${name}: ${(err as Error).message}`)
    }
  }
  return values
}

function tomlValueAsText(value: unknown): string {
  if (Array.isArray(value)) return value.map(String).join(',')
  if (typeof value === 'object' && value !== null) throw new InvalidValueError('expected a string, number, boolean or list')
  return String(value)
}

/** Shorthand constructors for the common kinds of settings. */
export const opt = {
  string: (description: string, defaultValue: string, argument = '<value>'): OptionSpec<string> =>
    ({ description, default: defaultValue, argument, parse: (raw) => raw }),
  boolean: (description: string, defaultValue: boolean): OptionSpec<boolean> =>
    ({ description, default: defaultValue, parse: parseBoolean }),
  list: <T>(description: string, argument: string, parseList: (raw: string) => T[]): OptionSpec<T[]> =>
    ({ description, default: [], argument, list: true, parse: parseList }),
  strings: (description: string, argument: string): OptionSpec<string[]> =>
    ({ description, default: [], argument, list: true, parse: splitList }),
}
