import { setTimeout as sleep } from 'node:timers/promises'

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>

/**
 * The one way tests wait for something asynchronous: calls `probe` until it returns a truthy
 * value (which it returns) and fails after `timeoutMs`, naming `what` and the last error.
 * Tests of time-driven behaviour use ManualClock instead, and wait for nothing.
 */
export async function eventually<T>(what: string, probe: () => Promise<T> | T, timeoutMs = 15_000, intervalMs = 50): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value) return value as Truthy<T>
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, lastError === undefined ? undefined : { cause: lastError })
    await sleep(intervalMs)
  }
}
