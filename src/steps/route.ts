// Steps 1 and 2 (DESIGN §3): the canonical-path check, then the route — the join endpoint first, like a
// route of its own, so no configured route ever receives the join path. Pure lookups; nothing is read.
import type { IncomingMessage } from 'node:http'
import type { Denial, Exchange } from '../exchange.js'
import { splitCanonicalTarget } from '../policy/canonical-path.js'
import { matchRoute } from '../policy/routes.js'

export function checkPath(x: Exchange, req: IncomingMessage): Denial | undefined {
  const target = splitCanonicalTarget(req.url ?? '')
  if (!target.ok) return { code: 'BAD_PATH' }
  x.path = target.path
  x.query = target.query
  return undefined
}

export function findRoute(x: Exchange): Denial | undefined {
  const join = x.gw.join
  if (join && x.path === join.id) {
    x.route = join
    return x.method === 'POST' ? undefined : { code: 'METHOD_NOT_ALLOWED', headers: { allow: 'POST' } }
  }
  const match = matchRoute(x.gw.routes, x.method ?? 'GET', x.path ?? '')
  if (match.kind === 'none') return { code: 'NO_ROUTE' }
  if (match.kind === 'method') return { code: 'METHOD_NOT_ALLOWED', headers: { allow: match.allow.join(', ') } }
  x.route = match.route
  return undefined
}

/** A declared body over bodyLimit is refused before anything reads it; the connection then closes. */
export function checkDeclaredSize(x: Exchange, req: IncomingMessage): Denial | undefined {
  const cl = req.headers['content-length']
  if (cl !== undefined && Number(cl) > x.gw.server.bodyLimit) return { code: 'BODY_TOO_LARGE', close: true }
  return undefined
}
