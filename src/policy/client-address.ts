// The client address that limits and audit lines use: the socket's, or X-Forwarded-For's when the
// peer is a trusted proxy (server.trustProxy). Reads only the matcher compiled at load; parses no config.
import type { IncomingMessage } from 'node:http'
import type { Gateway } from '../config/compile.js'
import { clientIp, normalizeAddress } from '../state/client-ip.js'

export function clientAddress(req: IncomingMessage, gw: Gateway): string {
  return clientIp(req, gw.server.trusted)
}

/** The socket peer as a forwarded request names it: its address, and whether it is a trusted proxy (DESIGN §3.6). */
export function forwardingPeer(req: IncomingMessage, gw: Gateway): { forwardedFor: string; trustedPeer: boolean } {
  const peer = normalizeAddress(req.socket.remoteAddress ?? '')
  return { forwardedFor: peer, trustedPeer: gw.server.trusted(peer) }
}
