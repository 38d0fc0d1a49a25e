// Black-box test harness: real `portcullis serve` processes on loopback in front of stand-in
// backends that record exactly what they receive. Every wait is bounded.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js')

export interface Recorded {
  method: string
  url: string
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  body: Buffer
}

export interface Backend {
  url: string
  port: number
  requests: Recorded[]
  server: Server
  close(): Promise<void>
}

/**
 * A stand-in backend. Answers 200 with a JSON echo, except:
 * `/sse` streams three events 150 ms apart; `/slow?ms=N` waits N ms; `/status/N` answers N;
 * `/reset` destroys the socket without answering.
 */
export async function startBackend(): Promise<Backend> {
  const requests: Recorded[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const rec = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) }
      requests.push(rec)
      const url = new URL(req.url!, 'http://x')
      if (url.pathname.endsWith('/sse') || url.pathname.endsWith('/events')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
        let n = 0
        const tick = setInterval(() => {
          res.write(`data: event-${n}\n\n`)
          if (++n === 3) {
            clearInterval(tick)
            res.end()
          }
        }, 150)
        res.on('close', () => clearInterval(tick))
        return
      }
      if (url.pathname.endsWith('/reset')) return req.socket.destroy()
      const status = /\/status\/([0-9]{3})$/.exec(url.pathname)
      const send = () => {
        res.writeHead(status ? Number(status[1]) : 200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ method: rec.method, url: rec.url, headers: rec.headers, body: rec.body.toString() }))
      }
      const slow = url.searchParams.get('ms')
      if (url.pathname.endsWith('/slow') && slow) setTimeout(send, Number(slow))
      else send()
    })
  })
  server.on('upgrade', (req, socket) => {
    requests.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) })
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
    socket.on('data', (d) => socket.write(Buffer.concat([Buffer.from('echo:'), d])))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

export interface RunningGateway {
  url: string
  port: number
  adminUrl?: string
  child: ChildProcess
  configFile: string
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string
  /** The JSON log lines on stdout. */
  logs(): Record<string, unknown>[]
  /** Audit lines (msg "auth"). */
  audits(): Record<string, unknown>[]
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

export function writeConfig(yaml: string, dir = mkdtempSync(join(tmpdir(), 'portcullis-test-'))): string {
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, yaml)
  return file
}

/** Runs the CLI to completion (bounded) and returns its exit code and output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, input?: string, timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
    child.stdin.end(input ?? '')
  })
}

/** Starts `portcullis serve` on a config text (use `listen: 127.0.0.1:0`) and waits for it to listen. */
export async function startGateway(yaml: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 15_000): Promise<RunningGateway> {
  const configFile = writeConfig(yaml)
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let stdoutText = ''
  child.stdout!.on('data', (d) => {
    out += d
    stdoutText += d
  })
  child.stderr!.on('data', (d) => (out += d))
  const logs = () =>
    stdoutText
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>
        } catch {
          return {}
        }
      })
  const waitForLog = async (pred: (line: Record<string, unknown>) => boolean, wait = 5000) => {
    const until = Date.now() + wait
    while (Date.now() < until) {
      const hit = logs().find(pred)
      if (hit) return hit
      if (child.exitCode !== null) break
      await new Promise((r) => setTimeout(r, 25))
    }
    throw new Error(`log line not seen within ${wait} ms; output:\n${out}`)
  }
  // A gateway that never got to listen must not outlive the test that started it.
  const listening = await waitForLog((l) => l.msg === 'listening', timeoutMs).catch((err: unknown) => {
    child.kill('SIGKILL')
    throw err
  })
  const url = String(listening.url)
  const g: RunningGateway = {
    url,
    port: Number(new URL(url).port),
    ...(listening.admin ? { adminUrl: String(listening.admin) } : {}),
    child,
    configFile,
    output: () => out,
    logs,
    audits: () => logs().filter((l) => l.msg === 'auth'),
    waitForLog,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode)
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
        child.once('exit', (code) => {
          clearTimeout(timer)
          resolve(code)
        })
        child.kill(signal)
      }),
  }
  return g
}

/** A throw-away secret of 48 characters, unique per call (tests grep the output for it). */
export function testSecret(label: string): string {
  return `${label}-${Math.random().toString(36).slice(2)}${'x'.repeat(48)}`.slice(0, 48)
}

/** Polls `pred` every 20 ms for at most `ms`; true once it held. */
export async function until(pred: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (pred()) return true
  return pred()
}
