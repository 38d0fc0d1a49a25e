// The container's HEALTHCHECK: exit 0 when this gateway answers, 1 otherwise. Reads only the config's
// `admin.listen` / `server.listen` (no secret is resolved, nothing is logged): with `admin:` it asks the
// admin listener's /healthz, without it it connects to the proxy listener — so no port is hard-coded.
// Run as `node dist/src/cli/healthcheck.js [--config PATH]`.
import { readFile } from 'node:fs/promises'
import { get } from 'node:http'
import { connect } from 'node:net'
import { parse as parseYaml } from 'yaml'
import { configPathFrom } from './args.js'

const TIMEOUT_MS = 2500

interface Target {
  host: string
  port: number
}

/** host:port as the config writes it ("0.0.0.0:9901", "[::]:9901", ":8080"); a wildcard host is asked on loopback. */
function probeTarget(listen: unknown, fallback: string): Target | undefined {
  const text = typeof listen === 'string' ? listen : fallback
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(text)
  if (!m) return undefined
  const host = m[1] ?? m[2] ?? ''
  const wildcard = host === '' || host === '0.0.0.0' || host === '::'
  return { host: wildcard ? (host === '::' ? '::1' : '127.0.0.1') : host, port: Number(m[3]) }
}

function healthz(t: Target): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get({ host: t.host, port: t.port, path: '/healthz', timeout: TIMEOUT_MS }, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
  })
}

function accepts(t: Target): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: t.host, port: t.port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(TIMEOUT_MS, () => done(false))
    socket.on('connect', () => done(true))
    socket.on('error', () => done(false))
  })
}

async function check(file: string): Promise<{ ok: boolean; how: string }> {
  let doc: { admin?: { listen?: unknown } | null; server?: { listen?: unknown } | null }
  try {
    doc = (parseYaml(await readFile(file, 'utf8')) ?? {}) as typeof doc
  } catch (err) {
    return { ok: false, how: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }
  }
  if (doc.admin) {
    const t = probeTarget(doc.admin.listen, '127.0.0.1:9901')
    if (!t) return { ok: false, how: 'admin.listen is not host:port' }
    return { ok: await healthz(t), how: `GET http://${t.host}:${t.port}/healthz` }
  }
  const t = probeTarget(doc.server?.listen, '127.0.0.1:8080')
  if (!t) return { ok: false, how: 'server.listen is not host:port' }
  return { ok: await accepts(t), how: `connect ${t.host}:${t.port} (no admin listener configured)` }
}

async function main(): Promise<number> {
  const at = process.argv.indexOf('--config')
  const file = configPathFrom(at > 0 ? process.argv[at + 1] : undefined)
  const r = await check(file)
  process.stdout.write(`${r.ok ? 'healthy' : 'unhealthy'}: ${r.how}\n`)
  return r.ok ? 0 : 1
}

main().then((code) => process.exit(code))
