// The gateway process: a Fastify server whose one catch-all route hands every request to the
// pipeline, the upgrade path, the client-error path, and the pieces that live across reloads.
import { randomUUID } from 'node:crypto'
import { METHODS, ServerResponse, type IncomingMessage, type Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Server as TlsServer } from 'node:tls'
import { pinHandshakePeer } from './auth/tls-peer.js'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Gateway } from './config/compile.js'
import { errorBody } from './errors.js'
import { handleRequest, handleUpgrade, refuseRequest, refusedInFlight, sendError, type Runtime } from './pipeline.js'
import { UpstreamPools } from './proxy/forward.js'
import { createAuditLog, type AuditRecord, type DecisionListener } from './observe/audit.js'
import { normalizeAddress } from './state/client-ip.js'
import type { GatewayState } from './policy/limits.js'
import { hasBody } from './proxy/body.js'

export interface GatewayServer {
  runtime: Runtime
  fastify: FastifyInstance
  /** http://host:port (or https://) actually bound — port 0 in the config picks a free one. */
  url: string
  /** Swap in a new config; requests in flight keep the one they started with. */
  reload(gateway: Gateway): void
  close(graceMs?: number): Promise<void>
}

export interface GatewayServerOptions {
  gateway: Gateway
  state: GatewayState
  logger: Logger
  listeners?: DecisionListener[]
  assert?: Runtime['assert']
}

/** Answers a request the HTTP parser refused; false when the socket could no longer be written to. */
function rawClientError(socket: Socket, status: number, code: 'BAD_PATH' | 'BAD_REQUEST', reqId: string): boolean {
  if (!socket.writable) {
    socket.destroy()
    return false
  }
  const body = errorBody(code, reqId)
  socket.end(`HTTP/1.1 ${status} Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${reqId}\r\nconnection: close\r\n\r\n${body}`)
  return true
}

/** Method and path (query cut) of the request line the parser refused, as far as it got; null when unknown. */
export function refusedRequestLine(raw: unknown): { method: string | null; path: string | null } {
  if (!Buffer.isBuffer(raw)) return { method: null, path: null }
  const text = raw.subarray(0, 8192).toString('latin1')
  const end = text.search(/[\r\n]/)
  const line = end === -1 ? text : text.slice(0, end)
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (.*?)(?: HTTP\/[0-9]\.[0-9])?$/.exec(line)
  if (!m) return { method: null, path: null }
  const target = m[2]!
  const q = target.indexOf('?')
  // Only a method Node knows: the method is a metric label, and its values must stay bounded.
  return { method: METHODS.includes(m[1]!) ? m[1]! : null, path: q === -1 ? target : target.slice(0, q) }
}

/** The audit line (and metrics) of a request the HTTP parser refused: a decision like any other (DESIGN §3, §6). */
function auditClientError(listeners: readonly DecisionListener[], socket: Socket, err: NodeJS.ErrnoException & { rawPacket?: unknown }, code: 'BAD_PATH' | 'BAD_REQUEST', reqId: string): void {
  const record: AuditRecord = {
    event: 'deny',
    reqId,
    ...refusedRequestLine(err.rawPacket),
    route: null,
    identity: null,
    authMethod: null,
    fp: null,
    reason: code,
    ip: normalizeAddress(socket.remoteAddress ?? ''),
    status: 400,
    upstream: null,
    ms: 0,
  }
  for (const l of listeners) l.decision(record)
}

export async function startGatewayServer(o: GatewayServerOptions): Promise<GatewayServer> {
  const gw = o.gateway
  const tls = gw.server.tls
  const fastify = Fastify({
    logger: false, // the pipeline writes its own audit lines; Fastify's request logs would double them
    bodyLimit: gw.server.bodyLimit,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    keepAliveTimeout: 65_000,
    ...(tls
      ? { https: { cert: tls.cert, key: tls.key, requireHostHeader: false, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}) } }
      : {}),
    // Node would answer a missing Host with a bare 400; the pipeline refuses it (and a doubled Host)
    // with our JSON body and an audit line instead.
    http: { requireHostHeader: false },
    // Fastify's router refuses a path it cannot percent-decode (`/%`, `/%zz`, `/%FF`) with its own
    // FST_ERR_BAD_URL body: send those through the pipeline too, so the answer is ours (400 BAD_PATH
    // for a malformed escape) and the decision is audited like any other.
    frameworkErrors: (_err: Error, request: { raw: IncomingMessage }, reply: { hijack(): void; raw: ServerResponse }) => handler(request, reply),
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      // The HTTP parser refused the request: nothing was routed or forwarded.
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return socket.destroy()
      const code = err.code === 'HPE_INVALID_URL' ? 'BAD_PATH' : 'BAD_REQUEST'
      // A request already handed to the pipeline (its body broke off, or its framing is bad): answer 400
      // unless its response has started, and let the pipeline write its one audit line, saying so.
      const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
      if (pending?.headersSent) return socket.destroy()
      const reqId = (pending?.req ? refusedInFlight(pending.req, code) : undefined) ?? randomUUID()
      if (rawClientError(socket, 400, code, reqId) && !pending) auditClientError(runtime.listeners, socket, err, code, reqId)
    },
  } as never) as unknown as FastifyInstance

  const runtime: Runtime = {
    gateway: gw,
    state: o.state,
    pools: new UpstreamPools(),
    listeners: o.listeners ?? [createAuditLog(o.logger)],
    tls: tls !== undefined,
    newRequestId: randomUUID,
    ...(o.assert ? { assert: o.assert } : {}),
  }

  fastify.removeAllContentTypeParsers()
  // Bodies are never parsed: they stream to the upstream, or are read by the method that verifies them.
  fastify.addContentTypeParser('*', (_req, _payload, done) => done(null))
  const handler = (request: { raw: IncomingMessage }, reply: { hijack(): void; raw: ServerResponse }) => {
    reply.hijack()
    handleRequest(runtime, request.raw, reply.raw).catch((err) => {
      o.logger.error({ err: { message: (err as Error).message } }, 'request failed')
      sendError(reply.raw, 'UPSTREAM_UNAVAILABLE', 'unknown')
    })
  }
  fastify.all('*', handler)
  fastify.setNotFoundHandler(handler)

  const server = fastify.server as Server
  // DESIGN §4.5: the identity is the certificate verified in the connection's own handshake; a TLS 1.2
  // renegotiation could otherwise swap in another certificate under the first one's `authorized`.
  if (tls) server.on('secureConnection', pinHandshakePeer)
  // Upgraded sockets leave the HTTP server's bookkeeping: shutdown must cut them itself when the grace ends.
  const tunnels = new Set<Socket>()
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    tunnels.add(socket)
    socket.once('close', () => tunnels.delete(socket))
    const fallback = () => {
      // An Upgrade on a route that does not allow it is served as a plain request, upgrade dropped.
      const res = new ServerResponse(req)
      res.assignSocket(socket)
      res.shouldKeepAlive = false
      res.on('finish', () => socket.end())
      if (hasBody(req)) return refuseRequest(runtime, req, res, 'BAD_REQUEST', 'Upgrade is not allowed on this route')
      handleRequest(runtime, req, res).catch(() => socket.destroy())
    }
    handleUpgrade(runtime, req, socket, head, fallback).catch(() => socket.destroy())
  })

  const { host, port } = gw.server.listen
  await fastify.listen({ host, port })
  const addr = server.address() as { address: string; port: number }
  const shownHost = addr.address.includes(':') ? `[${addr.address}]` : addr.address
  const url = `${tls ? 'https' : 'http'}://${shownHost}:${addr.port}`

  return {
    runtime,
    fastify,
    url,
    reload(next) {
      // New connections use the reloaded certificate, key and client CA (a CA removed from clientCa
      // stops being trusted); a listener switching between TLS and plain text needs a restart.
      const nextTls = next.server.tls
      if (tls && nextTls) (server as unknown as TlsServer).setSecureContext({ cert: nextTls.cert, key: nextTls.key, ...(nextTls.clientCa ? { ca: nextTls.clientCa } : {}) })
      runtime.gateway = next
    },
    async close(graceMs = gw.server.shutdownGraceMs) {
      // Stop listening now; in-flight requests get until the grace ends, then their sockets are cut.
      const deadline = Date.now() + graceMs
      const timer = setTimeout(() => {
        server.closeAllConnections()
        for (const socket of tunnels) socket.destroy()
      }, graceMs)
      // A keep-alive connection whose request just finished would otherwise hold the close until the grace.
      const sweep = setInterval(() => server.closeIdleConnections(), 100)
      timer.unref()
      sweep.unref()
      await fastify.close()
      clearTimeout(timer)
      clearInterval(sweep)
      // Upstream requests whose client is gone may still wait on a slow upstream: no longer than the grace.
      let late: NodeJS.Timeout | undefined
      await Promise.race([runtime.pools.close(), new Promise((r) => (late = setTimeout(r, Math.max(0, deadline - Date.now()))))])
      clearTimeout(late)
      await runtime.pools.destroy()
    },
  }
}
