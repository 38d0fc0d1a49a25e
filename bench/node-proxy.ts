// Two baselines with one handler: a minimal node:http + undici Pool proxy (the Node ceiling), and with
// `--fastify` the same handler behind a Fastify catch-all route that hijacks the reply — the difference is
// what Fastify itself costs per request. No auth, no logging; hop-by-hop headers are not forwarded.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { Pool } from 'undici'

const upstream = process.argv[2]!
const useFastify = process.argv.includes('--fastify')
const pool = new Pool(upstream, { connections: 128 })
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'proxy-connection', 'te', 'trailer'])

function forward(req: IncomingMessage, res: ServerResponse): void {
  const headers: Record<string, string | string[]> = {}
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD'
  pool.stream(
    { path: req.url ?? '/', method: req.method as 'GET', headers, body: hasBody ? req : null },
    ({ statusCode, headers: h }) => {
      const out: Record<string, string | string[]> = {}
      for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k)) out[k] = v
      res.writeHead(statusCode, out)
      return res
    },
    (err) => {
      if (err && !res.headersSent) {
        res.statusCode = 502
        res.end()
      }
    },
  )
}

let port: number
if (useFastify) {
  const { default: Fastify } = await import('fastify')
  const app = Fastify({ logger: false })
  // leave the body in the stream for the handler, as the hijacked reply expects
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => done(null))
  app.all('/*', (request, reply) => {
    reply.hijack()
    forward(request.raw, reply.raw)
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  port = (app.server.address() as { port: number }).port
} else {
  const server = createServer(forward)
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as { port: number }).port
}
process.stdout.write(JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${port}` }) + '\n')
