/** A long-lived component: whoever owns it starts and stops it; stopping twice is harmless. */
export interface Service {
  start(options?: { signal?: AbortSignal }): Promise<unknown> | void
  stop(): Promise<void> | void
}
