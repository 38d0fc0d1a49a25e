// The gateway process: a Fastify server whose one catch-all route hands every request to the
// pipeline, the upgrade path, the client-error path, and the pieces that live across reloads.
import { randomUUID } from 'node:crypto'
import { ServerResponse, type IncomingMessage, type Server } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Gateway } from './config/compile.js'
import { errorBody } from './errors.js'
import { handleRequest, handleUpgrade, sendError, type Runtime } from './pipeline.js'
import { UpstreamPools } from './proxy/forward.js'
import { createAuditLog, type DecisionListener } from './observe/audit.js'
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

function rawClientError(socket: Socket, status: number, code: 'BAD_PATH' | 'BAD_REQUEST'): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const body = errorBody(code, randomUUID())
  socket.end(`HTTP/1.1 ${status} Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
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
      ? { https: { cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}) } }
      : {}),
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      // The HTTP parser refused the request: nothing was routed or forwarded.
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return socket.destroy()
      if (err.code === 'HPE_INVALID_URL') return rawClientError(socket, 400, 'BAD_PATH')
      rawClientError(socket, 400, 'BAD_REQUEST')
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
      if (hasBody(req)) return sendError(res, 'BAD_REQUEST', randomUUID(), 'Upgrade is not allowed on this route')
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
