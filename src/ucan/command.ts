// UCAN commands (core spec §Command): syntax, and which delegated command proves which invoked one.

/** Lowercase, starts with `/`, no trailing `/` (except `/` itself), no empty segment. */
export function isCommand(cmd: unknown): cmd is string {
  if (typeof cmd !== 'string' || cmd.length === 0 || cmd.length > 256 || cmd[0] !== '/') return false
  if (cmd === '/') return true
  if (cmd !== cmd.toLowerCase()) return false
  return cmd.slice(1).split('/').every((s) => s.length > 0)
}

/** `/` proves everything; `/crypto` proves `/crypto` and `/crypto/sign`, never `/cryptocurrency`. */
export function commandCovers(delegated: string, invoked: string): boolean {
  return delegated === '/' || delegated === invoked || invoked.startsWith(delegated + '/')
}
