// The client address that limits and audit lines use: the socket's, or X-Forwarded-For's when the
// peer is a trusted proxy (server.trustProxy). Compiled per config; IPv4-mapped IPv6 reads as IPv4.
import type { IncomingMessage } from 'node:http'
import type { Gateway } from '../config/compile.js'
import { compileTrust, clientIp } from '../state/client-ip.js'

const compiled = new WeakMap<Gateway, ReturnType<typeof compileTrust>>()

export function clientAddress(req: IncomingMessage, gw: Gateway): string {
  let trust = compiled.get(gw)
  if (trust === undefined) compiled.set(gw, (trust = compileTrust(gw.server.trustProxy)))
  return clientIp(req, trust)
}
