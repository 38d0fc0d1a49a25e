// The two ways portcullis answers a client itself: through Node's ServerResponse, or written raw on a
// socket that has no response object (a CONNECT, an upgrade, a request the HTTP parser refused). Both
// write the same JSON error; neither ever writes after a response has started.
import { STATUS_CODES, type OutgoingHttpHeaders, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

export interface Reply {
  /** true once anything of a response went out: an error can then only cut the connection. */
  readonly started: boolean
  /** Sends a complete JSON answer; `close` ends the connection after it. */
  json(status: number, body: string, headers: OutgoingHttpHeaders, close: boolean): void
  /** Cut the connection (an error after the response started). */
  abort(): void
}

// Classes, not object literals with a getter: V8 gives each such literal a hidden class of its own, held in
// old space, and that map kept every request's response alive through the young-generation collections —
// a third of all allocation was promoted and collected again (docs/performance.md).

class ResponseReply implements Reply {
  constructor(private readonly res: ServerResponse) {}

  get started(): boolean {
    return this.res.headersSent
  }

  json(status: number, body: string, headers: OutgoingHttpHeaders, close: boolean): void {
    const res = this.res
    if (res.headersSent) return void res.destroy()
    const h: OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers }
    if (close) {
      h['connection'] = 'close'
      markClosing(res.socket)
    }
    res.writeHead(status, h)
    res.end(body)
  }

  abort(): void {
    this.res.destroy()
  }
}

class SocketReply implements Reply {
  private sent = false

  constructor(private readonly socket: Socket) {}

  get started(): boolean {
    return this.sent
  }

  json(status: number, body: string, headers: OutgoingHttpHeaders): void {
    const socket = this.socket
    if (this.sent || !socket.writable) return void socket.destroy()
    this.sent = true
    markClosing(socket)
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) head += `${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}\r\n`
    socket.end(`${head}connection: close\r\n\r\n${body}`)
  }

  abort(): void {
    this.socket.destroy()
  }
}

export function responseReply(res: ServerResponse): Reply {
  return new ResponseReply(res)
}

export function socketReply(socket: Socket): Reply {
  return new SocketReply(socket)
}

const kClosing = Symbol('portcullis.closing')
type Marked = Socket & { [kClosing]?: boolean }

/** DESIGN §3 step 0: after a response sent with `Connection: close`, nothing more is read from that connection. */
export function markClosing(socket: Socket | null): void {
  if (socket) (socket as Marked)[kClosing] = true
}

export function isClosing(socket: Socket | null): boolean {
  return socket !== null && (socket as Marked)[kClosing] === true
}
