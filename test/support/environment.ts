import { execFileSync } from 'node:child_process'

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Why tests that need root and Debian packages cannot run here, or undefined if they can.
 * With SHOAL_REQUIRE_ROOT_TESTS=1 (set by .ci/run) a missing prerequisite fails the run
 * instead of skipping.
 */
export function rootTestsUnavailable(commands: string[]): string | undefined {
  const missing = commands.filter((command) => !hasCommand(command))
  const reason = process.getuid?.() !== 0 ? 'needs root' : missing.length ? `needs ${missing.join(', ')} (apt-get install them, or run .ci/run)` : undefined
  if (reason && process.env['SHOAL_REQUIRE_ROOT_TESTS'] === '1') throw new Error(`SHOAL_REQUIRE_ROOT_TESTS=1 but this test ${reason}`)
  return reason
}
