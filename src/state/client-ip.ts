// The client address used for rate limits, auth-failure throttling and the audit log's `ip`.
// X-Forwarded-For is believed only from peers in server.trustProxy; a client can never choose its own address.

import type { IncomingMessage } from 'node:http'
import { BlockList, isIP, isIPv4 } from 'node:net'

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

/** Throws on an entry that is not an address or CIDR (config validation reports it first). */
export function compileTrust(trust: TrustProxy): TrustedProxies {
  if (trust === true) return () => true
  if (trust === false || trust.length === 0) return () => false
  const list = new BlockList()
  for (const entry of trust) {
    const [rawNet, rawPrefix, extra] = entry.split('/')
    const net = normalizeAddress(rawNet ?? '')
    const family = isIP(net)
    if (family === 0 || extra !== undefined) throw new Error(`trustProxy: not an address or CIDR: ${entry}`)
    const type = family === 4 ? 'ipv4' : 'ipv6'
    const bits = family === 4 ? 32 : 128
    let prefix = rawPrefix === undefined ? bits : Number(rawPrefix)
    // a CIDR written as IPv4-mapped IPv6 (::ffff:10.0.0.0/104) is the IPv4 CIDR it maps
    if (family === 4 && net !== rawNet && rawPrefix !== undefined) prefix -= 96
    if (rawPrefix !== undefined && !/^[0-9]{1,3}$/.test(rawPrefix)) throw new Error(`trustProxy: bad prefix length: ${entry}`)
    if (!(prefix >= 0 && prefix <= bits)) throw new Error(`trustProxy: bad prefix length: ${entry}`)
    list.addSubnet(net, prefix, type)
  }
  return (address) => {
    const family = isIP(address)
    return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6')
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
  let address = normalizeAddress(req.socket.remoteAddress ?? '')
  if (!trusted(address)) return address
  const header = req.headers['x-forwarded-for']
  if (header === undefined) return address
  const hops = (Array.isArray(header) ? header.join(',') : header).split(',')
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = forwardedAddress(hops[i] ?? '')
    if (hop === undefined) return address
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
