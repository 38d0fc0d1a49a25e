// The proxy listener: a node:http (or https) server whose every entry point — request, Expect other than
// 100-continue, upgrade, CONNECT, and the parser's own refusals — hands over to the one pipeline. Also
// owns what lives across reloads (pools, tunnels) and the drain on shutdown. It never answers by itself.
import { randomUUID } from 'node:crypto'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerOptions } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import type { Server as TlsServer, TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import type { Gateway } from './config/compile.js'
import { pinHandshakePeer } from './auth/tls-peer.js'
import { handleClientError, handleRequest, handleSocketRequest } from './pipeline.js'
import { UpstreamPools } from './proxy/forward.js'
import { createAuditLog, type DecisionListener } from './observe/audit.js'
import type { GatewayState } from './policy/limits.js'
import type { Runtime } from './runtime.js'

export interface GatewayServer {
  runtime: Runtime
  server: Server
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
  trackResponse?: Runtime['trackResponse']
  tracer?: Runtime['tracer']
}

function timeouts(gw: Gateway) {
  const ms = gw.server.requestTimeoutMs
  // Headers and body must both have arrived by requestTimeout (408 REQUEST_TIMEOUT, DESIGN §3 step 0).
  return { requestTimeout: ms, headersTimeout: ms }
}

export async function startGatewayServer(o: GatewayServerOptions): Promise<GatewayServer> {
  const gw = o.gateway
  const tls = gw.server.tls
  const runtime: Runtime = {
    gateway: gw,
    state: o.state,
    pools: new UpstreamPools(),
    listeners: o.listeners ?? [createAuditLog(o.logger)],
    logger: o.logger,
    tls: tls !== undefined,
    newRequestId: randomUUID,
    ...(o.assert ? { assert: o.assert } : {}),
    ...(o.trackResponse ? { trackResponse: o.trackResponse } : {}),
    ...(o.tracer ? { tracer: o.tracer } : {}),
  }

  const options: ServerOptions = {
    // A missing or doubled Host is refused by the pipeline, with our JSON body and an audit line.
    requireHostHeader: false,
    keepAliveTimeout: 65_000,
    noDelay: true,
    // How often Node looks for requests past their timeout: the 408 comes at most this late.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(gw.server.requestTimeoutMs / 4))),
    ...timeouts(gw),
  }
  const server: Server = tls
    ? createHttpsServer({ ...options, cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}) })
    : createHttpServer(options)
  // DESIGN §4.5: the identity is the certificate verified in the connection's own handshake; a TLS 1.2
  // renegotiation could otherwise swap in another certificate under the first one's `authorized`.
  if (tls) server.on('secureConnection', (socket: TLSSocket) => pinHandshakePeer(socket))

  // Sockets taken over from the HTTP server (tunnels, CONNECT): shutdown cuts them itself after the grace.
  const owned = new Set<Socket>()
  const own = (socket: Socket) => {
    owned.add(socket)
    socket.once('close', () => owned.delete(socket))
  }
  server.on('request', (req, res) => void handleRequest(runtime, req, res))
  // An Expect other than 100-continue: Node would answer 417 itself; the pipeline refuses it instead.
  server.on('checkExpectation', (req, res) => void handleRequest(runtime, req, res))
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    own(socket)
    void handleSocketRequest(runtime, req, socket, head)
  })
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    own(socket)
    void handleSocketRequest(runtime, req, socket, head)
  })
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => handleClientError(runtime, err, socket))

  const { host, port } = gw.server.listen
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const addr = server.address() as { address: string; port: number }
  const shownHost = addr.address.includes(':') ? `[${addr.address}]` : addr.address
  const url = `${tls ? 'https' : 'http'}://${shownHost}:${addr.port}`

  return {
    runtime,
    server,
    url,
    reload(next) {
      // New connections use the reloaded certificate, key and client CA (a CA removed from clientCa
      // stops being trusted); a listener switching between TLS and plain text needs a restart.
      const nextTls = next.server.tls
      if (tls && nextTls) (server as unknown as TlsServer).setSecureContext(nextTls.secureContext)
      Object.assign(server, timeouts(next))
      runtime.gateway = next
    },
    async close(graceMs = gw.server.shutdownGraceMs) {
      // Stop listening now; in-flight requests get until the grace ends, then their sockets are cut.
      const deadline = Date.now() + graceMs
      const timer = setTimeout(() => {
        server.closeAllConnections()
        for (const socket of owned) socket.destroy()
      }, graceMs)
      // A keep-alive connection whose request just finished would otherwise hold the close until the grace.
      const sweep = setInterval(() => server.closeIdleConnections(), 100)
      timer.unref()
      sweep.unref()
      const closed = new Promise<void>((r) => server.close(() => r()))
      server.closeIdleConnections()
      await closed
      clearTimeout(timer)
      clearInterval(sweep)
      // Upstream requests whose client is gone may still wait on a slow upstream: no longer than the grace.
      let late: NodeJS.Timeout | undefined
      await Promise.race([runtime.pools.close(), new Promise((r) => (late = setTimeout(r, Math.max(0, deadline - Date.now()))))])
      clearTimeout(late)
      await runtime.pools.destroy()
      for (const socket of owned) socket.destroy()
    },
  }
}
