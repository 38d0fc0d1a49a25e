// The demo's stand-in backends: an orchestrator and a pool-manager that answer with what they
// received (method, path, the x-auth-* identity headers), and an SSE stream of task events.
import { createServer, type Server } from 'node:http'

export function startStandIn(name: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url?.endsWith('/events')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      let n = 0
      const tick = setInterval(() => {
        res.write(`event: progress\ndata: {"task":"t1","step":${n}}\n\n`)
        if (++n === 3) {
          clearInterval(tick)
          res.end()
        }
      }, 200)
      res.on('close', () => clearInterval(tick))
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const identity: Record<string, string> = {}
      for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-auth-')) identity[k] = String(v)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ backend: name, method: req.method, path: req.url, identity, bodyBytes: Buffer.concat(chunks).length }))
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve(server))
  })
}
