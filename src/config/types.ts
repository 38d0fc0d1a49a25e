// What config loading hands to the modules that compile parts of it (auth schemes, stores, routes).
// Factories report problems through the context, which turns them into FILE:LINE:COL lines.
export type ConfigPath = ReadonlyArray<string | number>

export interface CompileContext {
  readonly file: string
  /** Record an error at the YAML node for `path` (e.g. ['schemes', 'signed', 'keys', 'worker-7']). */
  error(path: ConfigPath, message: string): void
  warn(path: ConfigPath, message: string): void
  /**
   * Resolve a secret reference (`${env:NAME}` / `${file:/path}`) found at `path`; records an error
   * (never the value) and returns undefined if it is inline, unresolvable, or under 32 characters.
   */
  secret(path: ConfigPath, ref: string): string | undefined
  /** Read a file named in the config (a JWKS, a certificate); records an error and returns undefined on failure. */
  readFile(path: ConfigPath, filePath: string): Buffer | undefined
}

/** "500ms" | "10s" | "5m" | "1h" | "1d" | whole seconds → milliseconds. */
export function durationMs(value: string | number): number {
  if (typeof value === 'number') return value * 1000
  const m = /^([0-9]+)(ms|s|m|h|d)$/.exec(value)
  if (!m) throw new Error(`bad duration ${value}`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd']
  return Number(m[1]) * unit
}

/** "512b" | "64kb" | "1mb" | "1gb" | whole bytes → bytes. */
export function sizeBytes(value: string | number): number {
  if (typeof value === 'number') return value
  const m = /^([0-9]+)(b|kb|mb|gb)$/.exec(value)
  if (!m) throw new Error(`bad size ${value}`)
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[m[2] as 'b' | 'kb' | 'mb' | 'gb']
  return Number(m[1]) * unit
}

/**
 * Compiles each entry of a list on its own: one that throws (a shape the schema already refused, since
 * compile also runs on a file with schema errors so every problem shows in one run) is an error at that
 * entry, and the others still compile.
 */
export function eachEntry<T>(ctx: CompileContext, list: readonly T[], at: (i: number) => ConfigPath, compile: (item: T, i: number) => void): void {
  list.forEach((item, i) => {
    try {
      compile(item, i)
    } catch (err) {
      ctx.error(at(i), `could not be compiled: ${(err as Error).message}`)
    }
  })
}
