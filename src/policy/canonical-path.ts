// The path check of DESIGN §3.1: decides whether a request target is canonical, before any policy.
// It never rewrites: the bytes it accepts are the bytes matched and forwarded.

export type Target = { ok: true; path: string; query: string } | { ok: false }

const HEX = /^[0-9A-Fa-f]{2}$/

/**
 * Split an origin-form request target into its path and query, or refuse it: absolute-form,
 * dot segments (raw or percent-encoded), encoded `/` or `\`, raw `\`, `//`, `;` parameters,
 * control bytes (raw or encoded), percent-encoded unreserved characters (`%61`, `%2E`, `%7E`),
 * fragments, characters that are not legal in a URI path, and malformed percent-escapes.
 */
export function splitCanonicalTarget(target: string): Target {
  if (target.length === 0 || target.charCodeAt(0) !== 0x2f /* / */) return { ok: false }
  const q = target.indexOf('?')
  const path = q === -1 ? target : target.slice(0, q)
  const query = q === -1 ? '' : target.slice(q)
  if (!isCanonicalPath(path)) return { ok: false }
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i)
    if (c < 0x21 || c > 0x7e || c === 0x23 /* # */) return { ok: false }
  }
  return { ok: true, path, query }
}

export function isCanonicalPath(path: string): boolean {
  let segStart = 1
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c < 0x21 || c > 0x7e) return false // controls, space, DEL, non-ASCII
    switch (c) {
      case 0x5c: // \
      case 0x3b: // ;
      case 0x23: // #
      case 0x22: // "
      case 0x3c: // <
      case 0x3e: // >
      case 0x60: // `
      case 0x7b: // {
      case 0x7d: // }
      case 0x7c: // |
      case 0x5e: // ^
        return false
      case 0x25: {
        // %XX: valid hex, and never an encoded separator, dot or control byte
        const hex = path.slice(i + 1, i + 3)
        if (!HEX.test(hex)) return false
        const byte = parseInt(hex, 16)
        if (byte === 0x2f || byte === 0x5c || byte < 0x20 || byte === 0x7f || byte === 0x3b) return false
        // RFC 3986 §6.2.2.2: an encoded unreserved character means the same as the character itself, so
        // a backend that decodes `/%61dmin` serves `/admin` — under whatever policy matched the raw bytes.
        if (isUnreserved(byte)) return false
        i += 2
        break
      }
      case 0x2f: {
        if (i > 0 && !isAcceptableSegment(path.slice(segStart, i), i === segStart)) return false
        segStart = i + 1
        break
      }
    }
  }
  return isAcceptableSegment(path.slice(segStart), false, true)
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e
}

/** Refuses empty inner segments (`//`) and `.`/`..` in any percent-encoding. */
function isAcceptableSegment(segment: string, empty: boolean, last = false): boolean {
  if (empty && !last) return false
  if (segment.length === 0) return true // trailing slash
  if (segment.length > 6) return true
  const decoded = segment.replace(/%2e/gi, '.')
  return decoded !== '.' && decoded !== '..'
}
