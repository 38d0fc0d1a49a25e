// The client address that limits and audit lines use: the socket's, or X-Forwarded-For's when the
// peer is a trusted proxy (server.trustProxy). Compiled per config; IPv4-mapped IPv6 reads as IPv4.
import type { IncomingMessage } from 'node:http'
import type { Gateway } from '../config/compile.js'
import { compileTrust, clientIp, normalizeAddress } from '../state/client-ip.js'

const compiled = new WeakMap<Gateway, ReturnType<typeof compileTrust>>()

export function clientAddress(req: IncomingMessage, gw: Gateway): string {
  let trust = compiled.get(gw)
  if (trust === undefined) compiled.set(gw, (trust = compileTrust(gw.server.trustProxy)))
  return clientIp(req, trust)
}

/** The socket peer as a forwarded request names it: its address, and whether it is a trusted proxy (DESIGN §3.6). */
export function forwardingPeer(req: IncomingMessage, gw: Gateway): { forwardedFor: string; trustedPeer: boolean } {
  let trust = compiled.get(gw)
  if (trust === undefined) compiled.set(gw, (trust = compileTrust(gw.server.trustProxy)))
  const peer = normalizeAddress(req.socket.remoteAddress ?? '')
  return { forwardedFor: peer, trustedPeer: trust(peer) }
}
