// DESIGN §4.7 as a route: the join endpoint takes the same steps as every request (framing, path,
// throttle, authenticate with the PSK, replay, rate limit), and its last step answers locally with
// the worker's wrapped key instead of forwarding. The route is compiled at load (config/compile.ts,
// auth/join.ts). Never logs the PSK, a key or a signature.
import type { JoinRoute } from '../config/compile.js'
import type { Exchange } from '../exchange.js'
import { BAD_PUBLIC_KEY, parseJoinBody } from '../auth/join.js'
import { importRawX25519, wrapWorkerKey } from '../auth/join-wrap.js'

/** The last step of the join route: the worker's key, wrapped for its public key (or in clear over TLS). */
export function answerJoin(x: Exchange, route: JoinRoute): { status: number; body: string } | { code: 'BAD_REQUEST'; message: string } {
  const parsed = parseJoinBody(x.body ?? Buffer.alloc(0))
  if (typeof parsed === 'string') return { code: 'BAD_REQUEST', message: parsed }
  const key = route.endpoint.keyFor(parsed.keyid)
  if (parsed.publicKey === undefined) return { status: 200, body: JSON.stringify({ keyid: parsed.keyid, key }) }
  const clientKey = importRawX25519(parsed.publicKey)
  if (!clientKey) return { code: 'BAD_REQUEST', message: BAD_PUBLIC_KEY }
  try {
    return { status: 200, body: JSON.stringify(wrapWorkerKey(parsed.keyid, key, clientKey)) }
  } catch {
    return { code: 'BAD_REQUEST', message: BAD_PUBLIC_KEY }
  }
}
