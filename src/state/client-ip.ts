// The client address used for rate limits, auth-failure throttling and the audit log's `ip`.
// X-Forwarded-For is believed only from peers in server.trustProxy; a client can never choose its own address.

import type { IncomingMessage } from 'node:http'
import { isIP, isIPv4 } from 'node:net'
import ipaddr from 'ipaddr.js'

type IPv4 = ipaddr.IPv4
type IPv6 = ipaddr.IPv6

/** server.trustProxy: false (socket only), true (every peer), or CIDRs / addresses of trusted proxies. */
export type TrustProxy = boolean | readonly string[]

/** Compiled once per config: is this (normalized) address a trusted proxy? */
export type TrustedProxies = (address: string) => boolean

/** `::ffff:1.2.3.4` → `1.2.3.4`; drops an IPv6 zone (`fe80::1%eth0`). Anything else is returned as is. */
export function normalizeAddress(address: string): string {
  const zone = address.indexOf('%')
  const plain = zone === -1 ? address : address.slice(0, zone)
  if (plain.length > 7 && plain.slice(0, 7).toLowerCase() === '::ffff:' && isIPv4(plain.slice(7))) return plain.slice(7)
  return plain
}

/** One trustProxy entry parsed: an address (a /32 or /128) or a CIDR; IPv4-mapped IPv6 becomes the IPv4 it maps. */
export type TrustEntry = { ok: true; range: [IPv4 | IPv6, number] } | { ok: false; message: string }

// ipaddr.js alone also takes forms such as `0x7f.1` or a zone id: an entry is plain dotted-decimal IPv4
// (no leading zeros) or IPv6 text, then an optional decimal prefix length.
const ENTRY_TEXT = /^([0-9A-Fa-f:.]+)(?:\/([0-9]{1,3}))?$/

export function parseTrustEntry(entry: string): TrustEntry {
  const bad: TrustEntry = { ok: false, message: `not an IP address or CIDR: "${entry}"` }
  const m = ENTRY_TEXT.exec(entry)
  if (!m) return bad
  const text = m[1]!
  let address: IPv4 | IPv6
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) address = ipaddr.IPv4.parse(text)
  else if (text.includes(':') && ipaddr.IPv6.isValid(text)) address = ipaddr.IPv6.parse(text)
  else return bad
  const bits = address.kind() === 'ipv4' ? 32 : 128
  let prefix = m[2] === undefined ? bits : Number(m[2])
  if (prefix > bits) return { ok: false, message: `prefix length /${prefix} is longer than ${bits} bits: "${entry}"` }
  if (address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress()) {
    if (prefix < 96) return { ok: false, message: `an IPv4-mapped CIDR needs a prefix length of at least /96: "${entry}"` }
    address = address.toIPv4Address()
    prefix -= 96
  }
  return { ok: true, range: [address, prefix] }
}

/**
 * The matcher of a trustProxy setting, built once per config. Throws on a bad entry: config loading checks
 * each entry first with parseTrustEntry and reports it at its FILE:LINE:COL.
 */
export function compileTrust(trust: TrustProxy): TrustedProxies {
  if (trust === true) return () => true
  if (trust === false || trust.length === 0) return () => false
  const v4: [IPv4, number][] = []
  const v6: [IPv6, number][] = []
  for (const entry of trust) {
    const parsed = parseTrustEntry(entry)
    if (!parsed.ok) throw new Error(`trustProxy: ${parsed.message}`)
    const [address, prefix] = parsed.range
    if (address instanceof ipaddr.IPv4) v4.push([address, prefix])
    else v6.push([address, prefix])
  }
  return (text) => {
    if (isIP(text) === 0) return false
    // process(): `::ffff:10.1.2.3` is matched as 10.1.2.3
    const address = ipaddr.process(text)
    if (address.kind() === 'ipv4') return v4.some((range) => address.match(range))
    return v6.some((range) => address.match(range))
  }
}

/** One X-Forwarded-For element as an address: `1.2.3.4:5678` and `[2001:db8::1]:443` lose their port. */
function forwardedAddress(element: string): string | undefined {
  let value = element.trim()
  if (value.startsWith('[')) {
    const end = value.indexOf(']')
    value = end === -1 ? '' : value.slice(1, end)
  } else if (value.indexOf(':') !== -1 && value.indexOf(':') === value.lastIndexOf(':')) {
    value = value.slice(0, value.indexOf(':'))
  }
  const address = normalizeAddress(value)
  return isIP(address) === 0 ? undefined : address
}

/**
 * The socket's address, unless that peer is a trusted proxy: then walk X-Forwarded-For from the right and
 * take the first address that is not a trusted proxy (all trusted → the leftmost). An element that is not an
 * address stops the walk at the last trusted hop, which is then the answer. '' for a socket already gone.
 */
export function clientIp(req: IncomingMessage, trusted: TrustedProxies): string {
  return walkForwarded(req, trusted, false)!
}

/**
 * Like clientIp, but refusing to guess: behind a trusted proxy, the client address must be named by
 * X-Forwarded-For, every hop parseable; undefined otherwise. For decisions that grant something to a
 * kind of address (`loopback: allow`), where falling back to the proxy's own address would fail open.
 */
export function strictClientIp(req: IncomingMessage, trusted: TrustedProxies): string | undefined {
  return walkForwarded(req, trusted, true)
}

function walkForwarded(req: IncomingMessage, trusted: TrustedProxies, strict: boolean): string | undefined {
  let address = normalizeAddress(req.socket.remoteAddress ?? '')
  if (!trusted(address)) return address
  const header = req.headers['x-forwarded-for']
  if (header === undefined) return strict ? undefined : address
  const hops = (Array.isArray(header) ? header.join(',') : header).split(',')
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = forwardedAddress(hops[i] ?? '')
    if (hop === undefined) return strict ? undefined : address
    address = hop
    if (!trusted(address)) return address
  }
  return address
}

/** Eight 16-bit groups of an IPv6 address (which may end in dotted IPv4), or undefined. */
function ipv6Groups(address: string): number[] | undefined {
  if (isIP(address) !== 6) return undefined
  let text = address.toLowerCase()
  const tailV4 = /([0-9.]+)$/.exec(text)
  if (tailV4 !== null && isIPv4(tailV4[1] ?? '')) {
    const [a, b, c, d] = (tailV4[1] ?? '').split('.').map(Number) as [number, number, number, number]
    text = text.slice(0, tailV4.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16)
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? 0 : 8 - left.length - right.length
  return [...left, ...Array<string>(zeros).fill('0'), ...right].map((g) => parseInt(g, 16))
}

/** RFC 5952 text of eight groups: lowercase, no leading zeros, the longest run of 2+ zero groups as `::`. */
function ipv6Text(groups: number[]): string {
  let bestAt = -1
  let bestLen = 1
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < groups.length && groups[j] === 0) j++
    if (j - i > bestLen) {
      bestAt = i
      bestLen = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestAt === -1) return hex.join(':')
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`
}

/**
 * The rate-limit bucket of a client address: IPv4 as is, IPv6 by its /64 (one subscriber usually holds a
 * whole /64, so per-address limits would be free to dodge), e.g. `2001:db8:1:2::/64`.
 */
export function rateLimitBucket(ip: string): string {
  const address = normalizeAddress(ip)
  const groups = ipv6Groups(address)
  if (groups === undefined) return address
  return `${ipv6Text([...groups.slice(0, 4), 0, 0, 0, 0])}/64`
}
