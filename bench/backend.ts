// The benchmark's fixed backend: answers every request with a small JSON body after reading its body.
import { createServer } from 'node:http'

const body = JSON.stringify({ ok: true, service: 'bench-backend' })
const server = createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
})
server.keepAliveTimeout = 65_000
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const a = server.address() as { port: number }
  process.stdout.write(JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${a.port}` }) + '\n')
})
