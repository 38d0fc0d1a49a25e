// Tunnels an authorized Upgrade (websocket: true routes only) to the upstream: the upgrade request
// goes out with the same hygiene as any request, then the two sockets are piped together.
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import type { Upstream } from '../config/compile.js'
import type { ErrorCode } from '../errors.js'

export interface TunnelRequest {
  upstream: Upstream
  method: string
  target: string
  headers: OutgoingHttpHeaders
  socket: Socket
  head: Buffer
}

/** Resolves to the upstream's status (101 when tunnelled), or an error code when nothing answered. */
export function tunnelUpgrade(t: TunnelRequest): Promise<number | ErrorCode> {
  return new Promise((resolve) => {
    const url = new URL(t.upstream.origin)
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest
    const out = request({
      host: url.hostname,
      port: url.port,
      method: t.method,
      path: t.upstream.basePath + t.target,
      headers: t.headers,
      timeout: t.upstream.timeoutMs,
    })
    let settled = false
    const settle = (v: number | ErrorCode) => {
      if (!settled) {
        settled = true
        resolve(v)
      }
    }
    out.on('upgrade', (res, upstream, upstreamHead) => {
      const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}`]
      for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`)
      t.socket.write(lines.join('\r\n') + '\r\n\r\n')
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
      // The upstream declined the upgrade: relay its answer and close.
      const lines = [`HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}`]
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        const name = res.rawHeaders[i]!.toLowerCase()
        if (name !== 'connection' && name !== 'transfer-encoding' && name !== 'keep-alive') lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`)
      }
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        lines.push(`content-length: ${body.length}`, 'connection: close')
        t.socket.end(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n'), body]))
        settle(res.statusCode ?? 502)
      })
    })
    out.on('timeout', () => {
      out.destroy()
      settle('UPSTREAM_TIMEOUT')
    })
    out.on('error', () => settle('UPSTREAM_UNAVAILABLE'))
    t.socket.on('error', () => out.destroy())
    out.end()
  })
}
