// Step 6 (DESIGN §3): the allowed request goes to its upstream with header hygiene applied — streamed,
// or tunnelled when it is an upgrade on a `websocket: true` route — and the upstream's answer is
// relayed. The join route answers here instead. The path sent is the path that was authorized.
import { ServerResponse, type IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { CompiledRoute, JoinRoute } from '../config/compile.js'
import type { Exchange } from '../exchange.js'
import { forwardHeaders, replaceHeader } from '../proxy/headers.js'
import { forwardingPeer } from '../policy/client-address.js'
import { answerJoin } from './join.js'

/** The join endpoint's own answer, never forwarded. */
export function respondJoin(x: Exchange, route: JoinRoute, res: ServerResponse): void {
  const answer = answerJoin(x, route)
  if ('code' in answer) return x.refuse(answer)
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer.body), 'cache-control': 'no-store', 'x-request-id': x.reqId, ...x.limitHeaders }
  res.writeHead(answer.status, headers)
  res.end(answer.body)
  x.allowed(answer.status)
}

function headersFor(x: Exchange, req: IncomingMessage, route: CompiledRoute, upgrade: boolean, extra: Record<string, string> | undefined) {
  const peer = forwardingPeer(req, x.gw)
  // Every field written, none spread in: one object shape per call site, built without V8's slow path
  // for properties after a spread (docs/performance.md).
  const headers = forwardHeaders(req.headers, {
    strip: route.credentials === 'strip' ? x.gw.credentials.headers : null,
    // Identity headers only for a request that was (or, on a report-only route, would have been) allowed.
    identity: x.identity && !x.wouldRefuse ? x.identity : undefined,
    setIdentityHeaders: route.identityHeaders,
    upgrade,
    host: route.upstream.host,
    forwardedFor: peer.forwardedFor,
    trustedPeer: peer.trustedPeer,
    requestId: x.reqId,
    proto: x.rt.tls ? 'https' : 'http',
    extra,
  })
  // Tracing on: the upstream's parent is the gateway's span, never the client's traceparent/tracestate as sent.
  if (x.span) {
    delete headers['traceparent']
    delete headers['tracestate']
    Object.assign(headers, x.span.propagation())
  }
  if (x.body && !upgrade) {
    headers['content-length'] = String(x.body.length)
    delete headers['transfer-encoding']
  }
  return headers
}

/** The signed assertion's header, when assertions are on and the request is (or would be) allowed with an identity. */
function assertion(x: Exchange, route: CompiledRoute): Promise<Record<string, string>> | undefined {
  const { identity, rt } = x
  if (!identity || x.wouldRefuse || !rt.assert || !x.gw.forward.assertion) return undefined
  return rt.assert(x.gw, { identity, route, method: x.method!, target: x.target, ...(x.body ? { body: x.body } : {}), reqId: x.reqId })
}

/** A plain request (an Upgrade on a route without `websocket: true` is one, its upgrade dropped). */
export async function forwardRequest(x: Exchange, req: IncomingMessage, res: ServerResponse, route: CompiledRoute): Promise<void> {
  // No await (and no promise) unless an assertion is signed: this runs for every forwarded request.
  const signing = assertion(x, route)
  const headers = headersFor(x, req, route, false, signing ? await signing : undefined)
  const sentAt = performance.now()
  const result = await x.rt.pools.forward(
    { upstream: route.upstream, method: x.method!, target: x.target, headers, body: x.body, req, bodyLimit: x.gw.server.bodyLimit },
    res,
    (status, out) => {
      replaceHeader(out, 'x-request-id', x.reqId)
      const limits = x.limitHeaders
      if (limits) for (const name in limits) replaceHeader(out, name, limits[name]!)
      x.allowed(status, { upstreamMs: performance.now() - sentAt })
    },
  )
  if (!result.error) return
  if (result.started) res.destroy()
  else x.failed(result.error, { upstreamMs: performance.now() - sentAt })
}

/** An upgrade on a `websocket: true` route: its own upstream connection, piped both ways once it is 101. */
export async function tunnel(x: Exchange, req: IncomingMessage, socket: Socket, head: Buffer, route: CompiledRoute): Promise<void> {
  const headers = headersFor(x, req, route, true, await assertion(x, route))
  const status = await x.rt.pools.tunnel({ upstream: route.upstream, method: x.method!, target: x.target, headers, socket, head, requestId: x.reqId })
  if (typeof status === 'number') x.allowed(status)
  else x.failed(status)
}

/** A plain response on an upgrade's socket, for an upgrade that is answered as an ordinary request. */
export function responseOnSocket(req: IncomingMessage, socket: Socket): ServerResponse {
  const res = new ServerResponse(req)
  res.assignSocket(socket)
  res.shouldKeepAlive = false
  res.on('finish', () => socket.end())
  // The HTTP server tells its own responses when their socket drains; this one hears it here, or a relayed
  // answer larger than the socket's buffer would stop for good once the first write came back full.
  const drained = () => {
    if (!res.writableEnded) res.emit('drain')
  }
  socket.on('drain', drained)
  res.once('close', () => socket.off('drain', drained))
  return res
}
