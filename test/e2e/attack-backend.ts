// A raw recording backend for the attack suites: a net.Server that keeps the exact bytes each
// connection delivers, parses them with a strict HTTP/1.1 parser of its own (so a request the
// gateway framed differently from us shows up as `malformed`), and answers each request `200 ok`.
import { connect, createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

export interface BackendRequest {
  method: string
  target: string
  /** Header lines as received, in order: [name, value]. */
  headers: Array<[string, string]>
  body: Buffer
  /** Which connection (0, 1, …) it came on. */
  connection: number
}

export interface RawBackend {
  port: number
  url: string
  requests: BackendRequest[]
  /** Byte strings that did not parse as a strict HTTP/1.1 request (and everything after them on that connection). */
  malformed: Array<{ connection: number; bytes: string; why: string }>
  /** Every byte received, per connection. */
  raw: Buffer[]
  close(): Promise<void>
}

type Parsed = { kind: 'request'; request: Omit<BackendRequest, 'connection'>; used: number } | { kind: 'more' } | { kind: 'malformed'; why: string }

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** One strict HTTP/1.1 request at the start of `buf`: CRLF only, no obs-fold, exactly one of CL / chunked. */
export function parseStrictRequest(buf: Buffer): Parsed {
  const end = buf.indexOf('\r\n\r\n')
  if (end === -1) {
    if (buf.length > 65_536) return { kind: 'malformed', why: 'head too long' }
    const text = buf.toString('latin1')
    if (/[^\r]\n/.test(text) || /^\n/.test(text) || /\r[^\n]/.test(text)) return { kind: 'malformed', why: 'bare CR or LF' }
    return { kind: 'more' }
  }
  const head = buf.subarray(0, end).toString('latin1')
  const lines = head.split('\r\n')
  if (lines.some((l) => /[\r\n]/.test(l))) return { kind: 'malformed', why: 'bare CR or LF' }
  const m = /^([A-Z]+) (\S+) HTTP\/1\.1$/.exec(lines[0]!)
  if (!m) return { kind: 'malformed', why: `request line ${JSON.stringify(lines[0])}` }
  const headers: Array<[string, string]> = []
  for (const line of lines.slice(1)) {
    if (/^[ \t]/.test(line)) return { kind: 'malformed', why: 'obs-fold' }
    const i = line.indexOf(':')
    if (i <= 0 || !TOKEN.test(line.slice(0, i))) return { kind: 'malformed', why: `header line ${JSON.stringify(line)}` }
    const value = line.slice(i + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return { kind: 'malformed', why: 'control byte in a header value' }
    headers.push([line.slice(0, i), value])
  }
  const all = (n: string) => headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v)
  const cl = all('content-length')
  const te = all('transfer-encoding')
  if (cl.length > 1) return { kind: 'malformed', why: 'several Content-Length' }
  if (cl.length && te.length) return { kind: 'malformed', why: 'Content-Length and Transfer-Encoding' }
  if (all('host').length !== 1) return { kind: 'malformed', why: 'not exactly one Host' }
  let at = end + 4
  if (te.length) {
    if (te.length > 1 || te[0]!.toLowerCase() !== 'chunked') return { kind: 'malformed', why: `Transfer-Encoding ${te.join(', ')}` }
    const parts: Buffer[] = []
    for (let n = 0; n < 100_000; n++) {
      const eol = buf.indexOf('\r\n', at)
      if (eol === -1) return { kind: 'more' }
      const sizeText = buf.subarray(at, eol).toString('latin1')
      if (!/^[0-9A-Fa-f]{1,8}$/.test(sizeText)) return { kind: 'malformed', why: `chunk size ${JSON.stringify(sizeText)}` }
      const size = parseInt(sizeText, 16)
      if (size === 0) {
        if (buf.length < eol + 4) return { kind: 'more' }
        if (buf.subarray(eol, eol + 4).toString('latin1') !== '\r\n\r\n') return { kind: 'malformed', why: 'trailers or a bad last chunk' }
        return { kind: 'request', request: { method: m[1]!, target: m[2]!, headers, body: Buffer.concat(parts) }, used: eol + 4 }
      }
      if (buf.length < eol + 2 + size + 2) return { kind: 'more' }
      if (buf.subarray(eol + 2 + size, eol + 4 + size).toString('latin1') !== '\r\n') return { kind: 'malformed', why: 'chunk longer than its size' }
      parts.push(buf.subarray(eol + 2, eol + 2 + size))
      at = eol + 4 + size
    }
    return { kind: 'malformed', why: 'too many chunks' }
  }
  const length = cl.length ? cl[0]! : '0'
  if (!/^[0-9]{1,15}$/.test(length)) return { kind: 'malformed', why: `Content-Length ${JSON.stringify(length)}` }
  const n = Number(length)
  if (buf.length < at + n) return { kind: 'more' }
  return { kind: 'request', request: { method: m[1]!, target: m[2]!, headers, body: buf.subarray(at, at + n) }, used: at + n }
}

/** Starts the recording backend on loopback. It answers every request it parses with `200 ok`. */
export async function startRawBackend(): Promise<RawBackend> {
  const requests: BackendRequest[] = []
  const malformed: RawBackend['malformed'] = []
  const raw: Buffer[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    const connection = raw.length
    raw.push(Buffer.alloc(0))
    sockets.add(socket)
    let pending: Buffer = Buffer.alloc(0)
    let broken = false
    socket.on('data', (d: Buffer) => {
      raw[connection] = Buffer.concat([raw[connection]!, d])
      if (broken) return
      pending = Buffer.concat([pending, d])
      for (let n = 0; n < 1000 && pending.length > 0; n++) {
        const p = parseStrictRequest(pending)
        if (p.kind === 'more') return
        if (p.kind === 'malformed') {
          broken = true
          malformed.push({ connection, bytes: pending.toString('latin1'), why: p.why })
          socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')
          return
        }
        requests.push({ ...p.request, connection })
        pending = pending.subarray(p.used)
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok')
      }
    })
    socket.on('error', () => undefined)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    malformed,
    raw,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  }
}

export interface GatewayResponse {
  status: number
  headers: Record<string, string>
  body: Buffer
  json: Record<string, unknown> | undefined
}

/**
 * Sends `bytes` on one connection and reads every response until the gateway closes, `expect`
 * final responses have arrived, or `timeoutMs` passes. 1xx interim responses are skipped.
 */
export function exchange(port: number, bytes: Buffer | string | Array<Buffer | string>, o: { expect?: number; timeoutMs?: number; gapMs?: number } = {}): Promise<{ responses: GatewayResponse[]; closed: boolean; raw: Buffer }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let buf: Buffer = Buffer.alloc(0)
    let done = false
    let closed = false
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ responses: parseResponses(buf), closed, raw: buf })
    }
    const timer = setTimeout(finish, o.timeoutMs ?? 4000)
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      if (o.expect !== undefined && parseResponses(buf).length >= o.expect) setTimeout(finish, 50)
    })
    socket.on('close', () => {
      closed = true
      finish()
    })
    socket.on('error', () => undefined)
    socket.on('connect', async () => {
      for (const part of Array.isArray(bytes) ? bytes : [bytes]) {
        if (done) return
        socket.write(typeof part === 'string' ? Buffer.from(part, 'latin1') : part)
        if (o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs))
      }
    })
  })
}

/** Every complete final response in `buf`, in order. */
export function parseResponses(buf: Buffer): GatewayResponse[] {
  const out: GatewayResponse[] = []
  let at = 0
  for (let n = 0; n < 100; n++) {
    const end = buf.indexOf('\r\n\r\n', at)
    if (end === -1) break
    const lines = buf.subarray(at, end).toString('latin1').split('\r\n')
    const status = Number(/^HTTP\/1\.[01] ([0-9]{3})/.exec(lines[0] ?? '')?.[1] ?? 0)
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':')
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
    }
    let next = end + 4
    let body: Buffer = Buffer.alloc(0)
    if (status >= 100 && status < 200 && status !== 101) {
      at = next
      continue
    }
    if (headers['content-length'] !== undefined) {
      const len = Number(headers['content-length'])
      if (buf.length < next + len) break
      body = buf.subarray(next, next + len)
      next += len
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = []
      let ok = false
      for (let k = 0; k < 10_000; k++) {
        const eol = buf.indexOf('\r\n', next)
        if (eol === -1) break
        const size = parseInt(buf.subarray(next, eol).toString('latin1'), 16)
        if (Number.isNaN(size)) break
        if (size === 0) {
          next = eol + 4
          ok = true
          break
        }
        parts.push(buf.subarray(eol + 2, eol + 2 + size))
        next = eol + 4 + size
      }
      if (!ok) break
      body = Buffer.concat(parts)
    } else if (status !== 101 && status !== 204 && status !== 304) {
      body = buf.subarray(next)
      next = buf.length
    }
    let json: Record<string, unknown> | undefined
    try {
      const v = JSON.parse(body.toString('utf8')) as unknown
      json = v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined
    } catch {
      json = undefined
    }
    out.push({ status, headers, body, json })
    at = next
    if (status === 101) break
  }
  return out
}
