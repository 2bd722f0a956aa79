/** The value every label outside the known set is counted under. */
export const OTHER_LABEL = 'other'
/** With no configured values, this many distinct values are kept before the rest become `other`. */
export const DEFAULT_LEARNED_LABELS = 16

/**
 * Keeps a metric label's values bounded, whatever clients send: values from a configured list
 * (e.g. the mirrored registries), or when none is configured, the first few seen. Anything else
 * is `other`, so a client cannot create series at will.
 */
export class LabelValues {
  private readonly known: Set<string>
  private readonly learning: boolean

  constructor(configured: Iterable<string>, private readonly learnLimit = DEFAULT_LEARNED_LABELS) {
    this.known = new Set(configured)
    this.learning = this.known.size === 0
  }

  of(value: string | undefined): string {
    const label = value ?? ''
    if (this.known.has(label)) return label
    if (this.learning && this.known.size < this.learnLimit) {
      this.known.add(label)
      return label
    }
    return OTHER_LABEL
  }
}
