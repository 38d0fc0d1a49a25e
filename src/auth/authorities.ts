// `server.authorities` (DESIGN §2, §4.4): the names clients address this gateway by, compiled once.
// A signature whose covered @authority is none of them was made for another gateway. Pure; no I/O.

export interface Authorities {
  /** Does this @authority (host[:port], as received) name this gateway? */
  allows(authority: string, scheme: string): boolean
}

/** host, or host:port with a 1–65535 port; IPv6 in brackets. No scheme, path or userinfo. */
const ENTRY = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::([0-9]{1,5}))?$/
const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443' }

/** Splits `host[:port]` (lower-case); undefined when it is not that shape. */
function split(authority: string): { host: string; port?: string } | undefined {
  const m = ENTRY.exec(authority.toLowerCase())
  if (!m) return undefined
  if (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535)) return undefined
  return m[2] === undefined ? { host: m[1]! } : { host: m[1]!, port: String(Number(m[2])) }
}

/** The list's entries, or the index and text of the first one that is not `host[:port]`. */
export function compileAuthorities(entries: readonly string[]): { ok: true; authorities: Authorities } | { ok: false; index: number } {
  const anyPort = new Set<string>()
  const exact = new Set<string>()
  for (const [index, entry] of entries.entries()) {
    const e = split(entry)
    if (!e) return { ok: false, index }
    if (e.port === undefined) anyPort.add(e.host)
    else exact.add(`${e.host}:${e.port}`)
  }
  return {
    ok: true,
    authorities: {
      allows(authority, scheme) {
        const a = split(authority)
        if (!a) return false
        if (anyPort.has(a.host)) return true
        // A Host without a port is the scheme's default port (RFC 9110 §4.2).
        const port = a.port ?? DEFAULT_PORTS[scheme]
        return port !== undefined && exact.has(`${a.host}:${port}`)
      },
    },
  }
}
