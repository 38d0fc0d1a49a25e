// Raw HTTP/1.1 over node:net for requests that curl-like clients would normalize or refuse to send
// (dot segments, %2F, //, NUL, duplicate headers, CL+TE, obs-fold, bare LF). Every wait is bounded.
import { connect, type Socket } from 'node:net'
import { request } from 'node:http'

export interface RawResponse {
  /** Everything the server sent before it closed or the response was complete. */
  raw: Buffer
  status: number
  /** Lower-cased header names; repeated headers joined with ', '. */
  headers: Record<string, string>
  body: Buffer
  /** The body parsed as JSON, or undefined. */
  json: Record<string, unknown> | undefined
  /** true when the server closed the connection without any response. */
  closedEmpty: boolean
}

function parseHead(head: string): { status: number; headers: Record<string, string> } {
  const lines = head.split('\r\n')
  const status = Number(/^HTTP\/1\.[01] ([0-9]{3})/.exec(lines[0] ?? '')?.[1] ?? 0)
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':')
    if (i <= 0) continue
    const name = line.slice(0, i).trim().toLowerCase()
    const value = line.slice(i + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  return { status, headers }
}

function dechunk(buf: Buffer): Buffer | undefined {
  const parts: Buffer[] = []
  let at = 0
  for (let n = 0; n < 100_000; n++) {
    const eol = buf.indexOf('\r\n', at)
    if (eol === -1) return undefined
    const size = parseInt(buf.subarray(at, eol).toString('latin1').split(';')[0]!, 16)
    if (Number.isNaN(size)) return undefined
    if (size === 0) return Buffer.concat(parts)
    if (buf.length < eol + 2 + size + 2) return undefined
    parts.push(buf.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return undefined
}

/** A complete final response in `buf` (skipping 1xx), or undefined while more is needed. */
function complete(buf: Buffer, method: string): Omit<RawResponse, 'raw' | 'closedEmpty'> | undefined {
  let start = 0
  for (let n = 0; n < 10; n++) {
    const end = buf.indexOf('\r\n\r\n', start)
    if (end === -1) return undefined
    const { status, headers } = parseHead(buf.subarray(start, end).toString('latin1'))
    const rest = buf.subarray(end + 4)
    if (status >= 100 && status < 200 && status !== 101) {
      start = end + 4
      continue
    }
    const done = (body: Buffer) => ({ status, headers, body, json: tryJson(body) })
    if (method === 'HEAD' || status === 101 || status === 204 || status === 304) return done(Buffer.alloc(0))
    if (headers['content-length'] !== undefined) {
      const len = Number(headers['content-length'])
      return rest.length >= len ? done(rest.subarray(0, len)) : undefined
    }
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const body = dechunk(rest)
      return body ? done(body) : undefined
    }
    return undefined // read until close
  }
  return undefined
}

function tryJson(body: Buffer): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/**
 * Sends `request` bytes exactly as given and reads one response: until it is complete (by
 * Content-Length or chunked framing), the server closes, or `timeoutMs` passes.
 */
export function rawRequest(port: number, request: string | Buffer | (string | Buffer)[], o: { timeoutMs?: number; method?: string; gapMs?: number } = {}): Promise<RawResponse> {
  const timeoutMs = o.timeoutMs ?? 15_000
  const method = o.method ?? (typeof request === 'string' ? request.split(' ')[0]! : 'GET')
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let finished = false
    const finish = () => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      socket.destroy()
      const raw = Buffer.concat(chunks)
      const parsed = complete(raw, method)
      if (parsed) return resolve({ raw, ...parsed, closedEmpty: false })
      const headEnd = raw.indexOf('\r\n\r\n')
      if (headEnd === -1) return resolve({ raw, status: 0, headers: {}, body: Buffer.alloc(0), json: undefined, closedEmpty: raw.length === 0 })
      const { status, headers } = parseHead(raw.subarray(0, headEnd).toString('latin1'))
      const body = raw.subarray(headEnd + 4)
      resolve({ raw, status, headers, body, json: tryJson(body), closedEmpty: false })
    }
    const timer = setTimeout(finish, timeoutMs)
    socket.on('data', (d: Buffer) => {
      chunks.push(d)
      if (complete(Buffer.concat(chunks), method)) finish()
    })
    socket.on('error', finish)
    socket.on('close', finish)
    socket.on('connect', async () => {
      const parts = Array.isArray(request) ? request : [request]
      for (const part of parts) {
        if (finished || socket.destroyed) return
        socket.write(part)
        if (o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs))
      }
    })
  })
}

/** `GET <target> HTTP/1.1` with Host and the given extra header lines, closing after the response. */
export function rawGet(port: number, target: string, headerLines: string[] = [], method = 'GET'): Promise<RawResponse> {
  const head = [`${method} ${target} HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...headerLines, 'Connection: close', '', ''].join('\r\n')
  return rawRequest(port, head, { method })
}

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  json: Record<string, unknown> | undefined
}

/** One request through node:http (no keep-alive, no extra headers added), bounded by `timeoutMs`. */
export function send(
  baseUrl: string,
  path: string,
  o: { method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer; timeoutMs?: number } = {},
): Promise<Reply> {
  const url = new URL(baseUrl)
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path, method: o.method ?? 'GET', headers: o.headers ?? {}, agent: false, timeout: o.timeoutMs ?? 20_000 },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8')
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: tryJson(Buffer.from(body)) })
        })
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no response within ${o.timeoutMs ?? 20_000} ms`)))
    req.on('error', reject)
    req.end(o.body)
  })
}
