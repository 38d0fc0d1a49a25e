// Tunnels an authorized Upgrade (websocket: true routes only) to the upstream: the upgrade request
// goes out with the same hygiene as any request, then the two sockets are piped together.
// Every upgrade gets a connection of its own, closed afterwards whatever the answer: a connection that
// carried an upgrade is never reused, so a declined upgrade cannot desynchronize a pooled one (smuggling).
// A declined upgrade's answer is streamed to the client, never held in memory.
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import type { Upstream } from '../config/compile.js'
import type { ErrorCode } from '../errors.js'
import { connectionNamed, isHopByHop } from './headers.js'

export interface TunnelRequest {
  upstream: Upstream
  method: string
  target: string
  headers: OutgoingHttpHeaders
  socket: Socket
  head: Buffer
  /** The audit line's reqId, sent to the client as x-request-id. */
  requestId?: string
}

interface TunnelTiming {
  /** When the upstream must have answered (ms since the epoch). */
  deadline: number
  /** Called exactly once, when the upstream connection is gone. */
  onEnd: () => void
}

/** The status line and headers of an upstream answer, hop-by-hop ones dropped unless `keep`. */
function head(res: IncomingMessage, keep: boolean, extra: string[]): string {
  const named = keep ? undefined : connectionNamed(res.headers.connection)
  const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}`]
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    const name = res.rawHeaders[i]!.toLowerCase()
    if (name === 'x-request-id') continue
    if (!keep && (isHopByHop(name) || named?.has(name))) continue
    lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`)
  }
  return [...lines, ...extra].join('\r\n') + '\r\n\r\n'
}

/** Resolves to the upstream's status (101 when tunnelled), or an error code when nothing answered. */
export function tunnelUpgrade(t: TunnelRequest & TunnelTiming): Promise<number | ErrorCode> {
  return new Promise((resolve) => {
    const url = new URL(t.upstream.origin)
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest
    // agent: false — a fresh connection, never taken from or returned to any pool.
    const out = request({ host: url.hostname, port: url.port, method: t.method, path: t.upstream.basePath + t.target, headers: t.headers, agent: false })
    const idHeader = t.requestId ? [`x-request-id: ${t.requestId}`] : []
    let settled = false
    const settle = (v: number | ErrorCode) => {
      clearTimeout(timer)
      if (!settled) {
        settled = true
        resolve(v)
      }
    }
    let ended = false
    const end = () => {
      if (!ended) {
        ended = true
        t.onEnd()
      }
    }
    const timer = setTimeout(() => {
      settle('UPSTREAM_TIMEOUT')
      out.destroy()
    }, Math.max(0, t.deadline - Date.now()))
    out.on('socket', (s: Socket) => s.once('close', end))
    out.on('upgrade', (res, upstream, upstreamHead) => {
      t.socket.write(head(res, true, idHeader))
      if (upstreamHead.length) t.socket.write(upstreamHead)
      if (t.head.length) upstream.write(t.head)
      upstream.pipe(t.socket).pipe(upstream)
      const close = () => {
        upstream.destroy()
        t.socket.destroy()
      }
      upstream.on('error', close)
      t.socket.on('error', close)
      upstream.on('close', close)
      t.socket.on('close', close)
      settle(res.statusCode ?? 101)
    })
    out.on('response', (res) => {
      // The upstream declined the upgrade: stream its answer, framed by its own Content-Length or by the
      // end of the connection (chunked framing is hop-by-hop and undone by the parser), then close both.
      t.socket.write(head(res, false, [...idHeader, 'connection: close']))
      res.pipe(t.socket)
      res.on('error', () => t.socket.destroy())
      res.on('end', () => out.destroy())
      t.socket.on('close', () => out.destroy())
      settle(res.statusCode ?? 502)
    })
    out.on('error', () => {
      settle('UPSTREAM_UNAVAILABLE')
      end()
    })
    t.socket.on('error', () => out.destroy())
    t.socket.on('close', () => out.destroy())
    out.end()
  })
}
