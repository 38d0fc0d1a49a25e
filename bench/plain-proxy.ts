// The baseline: a plain @fastify/http-proxy in front of the backend, no auth, no logging.
import Fastify from 'fastify'
import proxy from '@fastify/http-proxy'

const upstream = process.argv[2]!
const app = Fastify({ logger: false })
await app.register(proxy, { upstream, prefix: '/' })
await app.listen({ host: '127.0.0.1', port: 0 })
const a = app.server.address() as { port: number }
process.stdout.write(JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${a.port}` }) + '\n')
