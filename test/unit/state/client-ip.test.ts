// Client address: socket unless the peer is a trusted proxy, X-Forwarded-For walked from the right; IPv6 /64 buckets.

import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { clientIp, compileTrust, normalizeAddress, parseTrustEntry, rateLimitBucket } from '../../../src/state/client-ip.js'

function req(remoteAddress: string | undefined, xff?: string | string[]): IncomingMessage {
  const headers: Record<string, string | string[]> = {}
  if (xff !== undefined) headers['x-forwarded-for'] = xff
  return { socket: { remoteAddress }, headers } as unknown as IncomingMessage
}

t.test('no trust: always the socket address, whatever the headers say', async (t) => {
  const none = compileTrust(false)
  t.equal(clientIp(req('203.0.113.9', '1.1.1.1'), none), '203.0.113.9')
  t.equal(clientIp(req('::ffff:203.0.113.9', '1.1.1.1'), none), '203.0.113.9', 'IPv4-mapped counts as IPv4')
  t.equal(clientIp(req('2001:db8::5'), none), '2001:db8::5')
  t.equal(clientIp(req(undefined), none), '', 'a socket already gone')
  t.equal(clientIp(req('10.0.0.1', '1.1.1.1'), compileTrust([])), '10.0.0.1', 'an empty list trusts nobody')
})

t.test('trust all: the leftmost forwarded address', async (t) => {
  const all = compileTrust(true)
  t.equal(clientIp(req('10.0.0.1', '198.51.100.7, 10.0.0.2'), all), '198.51.100.7')
  t.equal(clientIp(req('10.0.0.1'), all), '10.0.0.1', 'no header: the socket')
})

t.test('trusted CIDRs: rightmost address that is not a trusted proxy', async (t) => {
  const trusted = compileTrust(['10.0.0.0/8', '::1', 'fd00::/8'])
  t.equal(clientIp(req('10.1.2.3', '198.51.100.7'), trusted), '198.51.100.7')
  t.equal(clientIp(req('10.1.2.3', '6.6.6.6, 198.51.100.7, 10.9.9.9'), trusted), '198.51.100.7', 'a spoofed leftmost entry is ignored')
  t.equal(clientIp(req('203.0.113.1', '198.51.100.7'), trusted), '203.0.113.1', 'an untrusted peer cannot forward')
  t.equal(clientIp(req('::ffff:10.1.2.3', '::ffff:198.51.100.7'), trusted), '198.51.100.7', 'mapped addresses on both sides')
  t.equal(clientIp(req('::1', '2001:db8::9'), trusted), '2001:db8::9')
  t.equal(clientIp(req('fd00::1', '[2001:db8::9]:443, 10.0.0.5'), trusted), '2001:db8::9', 'bracketed IPv6 with a port')
  t.equal(clientIp(req('10.1.2.3', '198.51.100.7:5555'), trusted), '198.51.100.7', 'IPv4 with a port')
  t.equal(clientIp(req('10.1.2.3', '10.2.2.2, 10.3.3.3'), trusted), '10.2.2.2', 'all trusted: the leftmost')
  t.equal(clientIp(req('10.1.2.3', 'garbage, 10.3.3.3'), trusted), '10.3.3.3', 'a malformed hop stops at the last trusted one')
  t.equal(clientIp(req('10.1.2.3', ['198.51.100.1', '198.51.100.2']), trusted), '198.51.100.2', 'repeated headers read as one list')
  t.equal(clientIp(req('10.1.2.3', ''), trusted), '10.1.2.3', 'an empty header: the proxy itself')
})

t.test('compileTrust: mapped CIDRs, single addresses, bad entries', async (t) => {
  const trusted = compileTrust(['::ffff:192.168.0.0/112', '172.16.5.4'])
  t.equal(trusted('192.168.7.7'), true, '::ffff:192.168.0.0/112 is 192.168.0.0/16')
  t.equal(trusted('192.169.0.1'), false)
  t.equal(trusted('172.16.5.4'), true)
  t.equal(trusted('172.16.5.5'), false)
  t.equal(trusted('not-an-ip'), false)
  t.throws(() => compileTrust(['10.0.0.0/33']))
  t.throws(() => compileTrust(['10.0.0.0/x']))
  t.throws(() => compileTrust(['example.com']))
  t.throws(() => compileTrust(['10.0.0.0/8/8']))
})

t.test('rateLimitBucket: IPv4 as is, IPv6 by /64', async (t) => {
  t.equal(rateLimitBucket('198.51.100.7'), '198.51.100.7')
  t.equal(rateLimitBucket('::ffff:198.51.100.7'), '198.51.100.7')
  t.equal(rateLimitBucket('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64')
  t.equal(rateLimitBucket('2001:db8:1:2::1'), '2001:db8:1:2::/64', 'same /64, same bucket')
  t.equal(rateLimitBucket('2001:0DB8:0001:0002:0:0:0:1'), '2001:db8:1:2::/64', 'case and leading zeros normalized')
  t.equal(rateLimitBucket('2001:db8::1'), '2001:db8::/64')
  t.equal(rateLimitBucket('2001:db8:0:5::9'), '2001:db8:0:5::/64')
  t.equal(rateLimitBucket('::1'), '::/64')
  t.equal(rateLimitBucket('fe80::1%eth0'), 'fe80::/64', 'zone dropped')
  t.equal(rateLimitBucket('64:ff9b::198.51.100.7'), '64:ff9b::/64', 'embedded IPv4 tail')
  t.equal(rateLimitBucket('2001:db8:1:3::1') === rateLimitBucket('2001:db8:1:2::1'), false, 'another /64, another bucket')
  t.equal(normalizeAddress('::ffff:1.2.3.4'), '1.2.3.4')
  t.equal(normalizeAddress('::ffff:abcd'), '::ffff:abcd', 'not mapped IPv4')
})

t.test('parseTrustEntry (ipaddr.js): addresses and CIDRs, IPv4-mapped read as IPv4, anything else refused', async (t) => {
  for (const bad of ['10.0.0.0/33', '10.0.0.0/x', 'example.com', '10.0.0.0/8/8', '', '0x7f.0.0.1', '010.0.0.1', '::/129', '10.0.0.0/', '1.2.3', ' 10.0.0.1']) {
    t.equal(parseTrustEntry(bad).ok, false, JSON.stringify(bad))
  }
  const trusted = compileTrust(['::ffff:10.0.0.0/104', '2001:db8::/32', '192.0.2.1'])
  t.equal(trusted('10.200.0.1'), true, 'a mapped CIDR is the IPv4 CIDR it maps')
  t.equal(trusted('::ffff:10.200.0.1'), true, 'a mapped peer is matched as IPv4')
  t.equal(trusted('11.0.0.1'), false)
  t.equal(trusted('2001:db8:5::1'), true)
  t.equal(trusted('2001:db9::1'), false)
  t.equal(trusted('::ffff:192.0.2.1'), true)
  t.equal(trusted('192.0.2.2'), false)
})
