// The admin listener (DESIGN §6): /healthz, /readyz, /metrics and /jwks.json on their own port,
// never on the proxy port. A plain node:http server: four read-only GET endpoints need no framework.
// It serves no credential: metrics carry fingerprints only, /jwks.json public keys only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Listen } from '../config/compile.js'
import type { Metrics } from '../observe/metrics.js'

export interface AdminOptions {
  listen: Listen
  metrics: Pick<Metrics, 'text' | 'registry'>
  /** Why the gateway cannot take traffic now (store unreachable, shutting down), or undefined when ready. */
  notReady: () => string | undefined
  /** The assertion's public keys (JWKS); /jwks.json is 404 while this is absent or returns undefined. */
  jwks?: () => object | undefined
}

export interface AdminServer {
  /** http://host:port actually bound. */
  url: string
  close(): Promise<void>
}

function json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...extra })
  res.end(text)
}

async function route(o: AdminOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]
  if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'Method not allowed' }, { allow: 'GET, HEAD' })
  switch (path) {
    case '/healthz':
      return json(res, 200, { status: 'ok' })
    case '/readyz': {
      const reason = o.notReady()
      return reason === undefined ? json(res, 200, { status: 'ready' }) : json(res, 503, { status: 'not ready', reason })
    }
    case '/metrics': {
      const text = await o.metrics.text()
      res.writeHead(200, { 'content-type': o.metrics.registry.contentType, 'content-length': Buffer.byteLength(text) })
      return void res.end(text)
    }
    case '/jwks.json': {
      const keys = o.jwks?.()
      return keys === undefined ? json(res, 404, { error: 'No assertion key configured' }) : json(res, 200, keys, { 'cache-control': 'max-age=60' })
    }
    default:
      return json(res, 404, { error: 'Not found' })
  }
}

export async function startAdminServer(o: AdminOptions): Promise<AdminServer> {
  const server: Server = createServer((req, res) => {
    route(o, req, res).catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'Internal error' })
      else res.destroy()
    })
  })
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(o.listen.port, o.listen.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const addr = server.address() as AddressInfo
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
