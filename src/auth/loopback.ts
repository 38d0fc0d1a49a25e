// `loopback: allow` (DESIGN §3.3): a route option, not a credential. A request that carries none of the
// route's credentials passes as identity "localhost" when it comes from this host. Nothing to strip,
// redact or count for ambiguity; never lets a request through that carries a credential.
import type { IncomingMessage } from 'node:http'
import { Type } from '@sinclair/typebox'
import type { Identity } from './types.js'

function isLoopbackAddress(a: string): boolean {
  return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.')
}

const fields = { loopback: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('deny')])) }

export const loopback = {
  name: 'loopback',
  /** Its field of a route. */
  fields,
  /** Not a credential: a request's socket address, never a header. */
  credential: null,
  /** A route's `loopback` → does the route admit loopback requests without a credential? */
  compile: (route: { loopback?: 'allow' | 'deny' }): boolean => route.loopback === 'allow',
  /**
   * The socket peer is loopback and so is the client address it stands for — behind a trusted local proxy
   * (a TLS terminator on 127.0.0.1) the forwarded address decides, not the proxy's.
   */
  admits: (req: IncomingMessage, clientIp: string): boolean => isLoopbackAddress(req.socket.remoteAddress ?? '') && isLoopbackAddress(clientIp),
  /** The identity it gives; its method name is reserved (no scheme may be called `loopback`). */
  identity: (): Identity => ({ name: 'localhost', roles: [], method: 'loopback', fp: '' }),
} as const
