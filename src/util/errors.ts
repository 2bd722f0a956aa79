/**
 * Base of shoal's error classes: an error's `name` is its class name, and an error that wraps
 * another keeps it as `cause` (logged with its stack) instead of pasting its message in.
 */
export class ShoalError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

/** The message of an error and of the causes it wraps, for one line of output. */
export function describeError(err: unknown): string {
  const parts: string[] = []
  for (let current: unknown = err; current !== undefined && parts.length < 5; current = (current as { cause?: unknown }).cause) {
    const message = current instanceof Error ? current.message : String(current)
    if (!parts.some((part) => part.includes(message))) parts.push(message)
  }
  return parts.join(': ')
}
