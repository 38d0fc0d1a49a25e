// Sends an authorized request to its upstream over a keep-alive pool and streams the answer back.
// The path it sends is the canonical path as received; bodies stream both ways (SSE is never buffered).
// Owns each upstream's connection budget (`connections`): a request waits for a slot, never in
// undici's own queue, so the upstream's `timeout` can end the wait (undici cannot abort a queued request).
import { IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http'
import type { EventEmitter } from 'node:events'
import { Transform, type Readable } from 'node:stream'
import { Pool } from 'undici'
import type { Upstream } from '../config/compile.js'
import type { ErrorCode } from '../errors.js'
import { upstreamHeaders } from './headers.js'
import { tunnelUpgrade, type TunnelRequest } from './websocket.js'

export interface ForwardRequest {
  upstream: Upstream
  method: string
  /** Path and query exactly as received. */
  target: string
  headers: OutgoingHttpHeaders
  /** A verified, buffered body; otherwise the request stream itself is forwarded. */
  body?: Buffer
  req: IncomingMessage
  bodyLimit: number
}

export interface ForwardResult {
  /** The upstream's status, or the error code when no response came. */
  status?: number
  error?: ErrorCode
  /** true when the response to the client had already started when the error came. */
  started: boolean
}

/**
 * At most `max` connections of one upstream in use at once (pooled requests and upgrade tunnels
 * together); the others wait in arrival order. A slot is given back exactly once.
 */
export class ConnectionSlots {
  private busy = 0
  private readonly waiting = new Set<(release: () => void) => void>()

  constructor(readonly max: number) {}

  get inUse(): number {
    return this.busy
  }

  get queued(): number {
    return this.waiting.size
  }

  /** Calls `granted` once a slot is free (maybe at once); returns a function that withdraws a waiter. */
  take(granted: (release: () => void) => void): () => void {
    if (this.busy < this.max) {
      this.busy++
      granted(this.releaser())
      return () => undefined
    }
    this.waiting.add(granted)
    return () => this.waiting.delete(granted)
  }

  private releaser(): () => void {
    let done = false
    return () => {
      if (done) return
      done = true
      const next = this.waiting.values().next()
      if (next.done) this.busy--
      else {
        // The slot passes straight to the next waiter: `busy` is unchanged.
        this.waiting.delete(next.value)
        next.value(this.releaser())
      }
    }
  }
}

interface UpstreamEntry {
  pool: Pool
  slots: ConnectionSlots
}

/** Keep-alive pools, one per upstream; kept across reloads while its origin and `connections` stay. */
export class UpstreamPools {
  private readonly entries = new Map<string, UpstreamEntry>()
  /** The entry of each compiled upstream, so a request does not rebuild the key. */
  private byUpstream = new WeakMap<Upstream, UpstreamEntry>()

  private entry(u: Upstream): UpstreamEntry {
    const known = this.byUpstream.get(u)
    if (known !== undefined) return known
    const key = `${u.name} ${u.origin} ${u.connections}`
    let e = this.entries.get(key)
    if (!e) {
      const pool = new Pool(u.origin, { connections: u.connections, pipelining: 1, keepAliveTimeout: 30_000, connect: { noDelay: true } as never })
      e = { pool, slots: new ConnectionSlots(u.connections) }
      this.entries.set(key, e)
    }
    this.byUpstream.set(u, e)
    return e
  }

  /** The connection budget of an upstream (for tests and metrics). */
  slots(u: Upstream): ConnectionSlots {
    return this.entry(u).slots
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.entries.values()].map((e) => e.pool.close()))
    this.entries.clear()
    this.byUpstream = new WeakMap()
  }

  /** Abort whatever is still in flight (shutdown after the grace). */
  async destroy(): Promise<void> {
    const entries = [...this.entries.values()]
    this.entries.clear()
    this.byUpstream = new WeakMap()
    await Promise.allSettled(entries.map((e) => e.pool.destroy()))
  }

  /**
   * Wait for a connection slot of `u`, at most until `deadline` (ms since the epoch), while `lifetime`
   * (the client's response or socket) is open. Resolves to the release, or the error code that ended the wait.
   */
  private wait(u: Upstream, deadline: number, lifetime: EventEmitter): { release: () => void } | Promise<{ release: () => void } | { error: ErrorCode }> {
    // A free slot with nobody waiting: taken at once, without a timer or a listener.
    const slots = this.entry(u).slots
    if (slots.inUse < slots.max && slots.queued === 0) {
      let release!: () => void
      slots.take((r) => (release = r))
      return { release }
    }
    return new Promise((resolve) => {
      let waiting = true
      let timer: NodeJS.Timeout | undefined
      const finish = (v: { release: () => void } | { error: ErrorCode }) => {
        if (!waiting) return
        waiting = false
        clearTimeout(timer)
        lifetime.off('close', onGone)
        resolve(v)
      }
      const onGone = () => {
        withdraw()
        finish({ error: 'UPSTREAM_UNAVAILABLE' })
      }
      const withdraw = this.entry(u).slots.take((release) => finish({ release }))
      if (!waiting) return
      timer = setTimeout(() => {
        withdraw()
        finish({ error: 'UPSTREAM_TIMEOUT' })
      }, Math.max(0, deadline - Date.now()))
      lifetime.once('close', onGone)
    })
  }

  /**
   * An upgrade on a connection of its own (never pooled, closed after whatever the answer); it holds one
   * of the upstream's slots until the tunnel or the answer ends.
   */
  async tunnel(t: TunnelRequest): Promise<number | ErrorCode> {
    const deadline = Date.now() + t.upstream.timeoutMs
    const slot = await this.wait(t.upstream, deadline, t.socket)
    if ('error' in slot) return slot.error
    return tunnelUpgrade({ ...t, deadline, onEnd: slot.release })
  }

  /**
   * Forward and pipe the response into `res`. `onHeaders` runs once the upstream answered, before
   * anything is written, so the caller can log and add headers.
   */
  forward(f: ForwardRequest, res: ServerResponse, onHeaders: (status: number, headers: string[]) => void): Promise<ForwardResult> {
    // The upstream's `timeout` runs from here — waiting for a connection included — until its response headers.
    const deadline = Date.now() + f.upstream.timeoutMs
    const waited = this.wait(f.upstream, deadline, res)
    if (!(waited instanceof Promise)) return this.send(f, res, onHeaders, waited.release, deadline)
    return waited.then((slot) => ('error' in slot ? { started: false, error: slot.error } : this.send(f, res, onHeaders, slot.release, deadline)))
  }

  /** With a connection slot held (given back when the exchange with the upstream ends). */
  private send(f: ForwardRequest, res: ServerResponse, onHeaders: (status: number, headers: string[]) => void, release: () => void, deadline: number): Promise<ForwardResult> {
    const body = f.body ?? requestStream(f.req, f.bodyLimit)
    return new Promise<ForwardResult>((resolve) => {
      const relay = new Relay(res, body, onHeaders, release, resolve, deadline)
      this.entry(f.upstream).pool.dispatch(
        {
          path: f.upstream.basePath + f.target,
          method: f.method as never,
          headers: f.headers as Record<string, string>,
          body: body ?? null,
          headersTimeout: f.upstream.timeoutMs,
          bodyTimeout: 0,
        },
        relay,
      )
    })
  }
}

/**
 * One forwarded exchange, as undici's dispatch handler: the upstream's status and headers go to
 * `onHeaders` and then into `res`, its body chunks straight into `res` (paused while `res` is full), and
 * `settle` gets the outcome once. In place of undici's stream(), which wraps every request in an
 * AsyncResource and watches `res` with stream.finished (a dozen listeners): on the node ceiling that
 * measured ~20 % of its CPU per request (docs/performance.md).
 *
 * - The upstream's `timeout` runs until its response headers: an exact timer aborts the exchange (undici's
 *   own headersTimeout does not fire on time for sub-second values, nor on a reused keep-alive connection).
 * - The client gone before the answer ended (`res` closed unfinished) aborts the exchange with the upstream,
 *   from the response headers on (before them the exchange runs until its headers or its timeout).
 * - A streamed body: undici's leftover 'error' listeners come off it (dropLeftoverListeners), and it is
 *   destroyed when the exchange fails, as undici's own handlers do.
 */
class Relay {
  /** undici's abort of this request, once it is on a connection. */
  private abortUpstream: ((err: Error) => void) | null = null
  /** An abort asked for before the request was on a connection: applied in onConnect. */
  private reason: Error | null = null
  private started = false
  /** The exchange with the upstream ended (completed or failed): its slot is given back. */
  private ended = false
  private settled = false
  private timedOut = false
  private readonly timer: NodeJS.Timeout
  private readonly streamed: Readable | undefined
  /** The body's 'error' listeners before undici added its own. */
  private readonly listening: number

  constructor(
    private readonly res: ServerResponse,
    body: Buffer | Readable | undefined,
    private readonly headersReady: (status: number, headers: string[]) => void,
    private readonly release: () => void,
    private readonly settle: (r: ForwardResult) => void,
    deadline: number,
  ) {
    this.streamed = body === undefined || Buffer.isBuffer(body) ? undefined : body
    this.listening = this.streamed ? this.streamed.listenerCount('error') : 0
    this.timer = setTimeout(() => {
      this.timedOut = true
      this.cancel(new Error('upstream timeout'))
    }, Math.max(0, deadline - Date.now()))
  }

  private cancel(err: Error): void {
    if (this.abortUpstream) this.abortUpstream(err)
    else this.reason = err
  }

  onConnect(abort: (err: Error) => void): void {
    if (this.reason) abort(this.reason)
    else this.abortUpstream = abort
  }

  onHeaders(statusCode: number, raw: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true // 1xx: not relayed
    clearTimeout(this.timer)
    // From here undici must not hear the body's error: see dropLeftoverListeners.
    if (this.streamed) dropLeftoverListeners(this.streamed, this.listening)
    const out = upstreamHeaders(raw)
    this.headersReady(statusCode, out)
    this.started = true
    const res = this.res
    // A flat list: nothing may setHeader() on `res` before this, or Node's writeHead takes its progressive
    // path, where (Node 20) each pair is a setHeader and a repeated name (Set-Cookie) keeps only its last line.
    res.writeHead(statusCode, out)
    res.on('drain', resume)
    res.once('close', this.clientGone)
    if (res.destroyed) this.clientGone() // gone before the answer came
    return !res.writableNeedDrain
  }

  onData(chunk: Buffer): boolean {
    return this.res.write(chunk)
  }

  onComplete(): void {
    if (!this.end()) return
    this.res.end()
    this.finish({ started: true })
  }

  onError(err: Error): void {
    if (!this.end()) return
    if (this.streamed) destroy(this.streamed, err)
    if (this.started) this.res.destroy()
    this.finish({ started: this.started, error: this.timedOut && !this.started ? 'UPSTREAM_TIMEOUT' : errorCode(err as NodeJS.ErrnoException) })
  }

  /** `res` closed: before the upstream's answer ended, the client went away and the exchange is aborted. */
  private readonly clientGone = (): void => {
    if (this.ended) return
    this.cancel(new Error('client closed'))
  }

  /** Ends the exchange with the upstream once; false when it had ended already. */
  private end(): boolean {
    if (this.ended) return false
    this.ended = true
    clearTimeout(this.timer)
    this.release()
    if (this.streamed) dropLeftoverListeners(this.streamed, this.listening)
    return true
  }

  private finish(r: ForwardResult): void {
    if (this.settled) return
    this.settled = true
    this.settle(r)
  }
}

/**
 * The request body of a failed exchange, destroyed as undici destroys it: an IncomingMessage first lets
 * go of its socket, or destroying it would close the client's connection too — and the client would get
 * no 502 or 504, only a cut connection (Node's server reads and drops the rest of the body as usual).
 */
function destroy(body: Readable, err: Error): void {
  if (body.destroyed) return
  if (body instanceof IncomingMessage) (body as { socket: unknown }).socket = null
  body.destroy(err)
}

/**
 * undici's 'error' listeners on a stream body, taken off once the upstream's response headers are in and
 * again when the exchange ends (the writer may add its own after the headers).
 *
 * - **A crash**, with undici's stream() (before the Relay, which ends once whatever calls it). When the
 *   upstream died mid-response while the body was still coming, stream()'s handler ran its onError twice:
 *   the first destroyed the response and then the body with the error, the body's 'error' brought it back
 *   through its own listener (lib/api/api-stream.js), where it used up the callback, and the response's
 *   'close' then called the callback that was gone — a TypeError thrown from an event handler, which ended
 *   the process. The cut-off stays: from the response headers on, the body's 'error' is not heard by
 *   undici; the body writer still hears its 'close' (lib/dispatcher/client-h1.js writeStream).
 * - **A retention.** undici leaves these listeners after the exchange (the writer would take its own off on
 *   the body's 'close', after it took its 'close' listener off). Through them the request reached the
 *   handler, the writer and what they hold, and young objects could not die young: on a 1 KB POST with its
 *   body streamed, 2.4 MB promoted per young-generation collection instead of 0.2 MB.
 *
 * An IncomingMessage with no 'error' listener does not emit one; the byte counter in front of a chunked
 * body (requestStream) keeps a listener that ignores (the request's own failure reaches it by the pipe).
 */
function dropLeftoverListeners(body: Readable, before: number): void {
  if (body.listenerCount('error') > before) {
    for (const listener of body.listeners('error').slice(before)) body.removeListener('error', listener as (err: Error) => void)
  }
  // A plain stream's 'error' with no listener is thrown, and the pipe from the request re-emits one when it
  // was the pipe's last listener: the counter always keeps one that ignores it.
  if (!(body instanceof IncomingMessage) && !body.listeners('error').includes(ignore)) body.on('error', ignore)
}

function ignore(): void {}

function errorCode(err: NodeJS.ErrnoException): ErrorCode {
  if (err instanceof BodyLimitError || (err.cause as unknown) instanceof BodyLimitError) return 'BODY_TOO_LARGE'
  switch (err.code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'UPSTREAM_TIMEOUT'
    default:
      return 'UPSTREAM_UNAVAILABLE'
  }
}

class BodyLimitError extends Error {}

/** The request body as a stream: undefined when there is none; counted against bodyLimit when chunked. */
function requestStream(req: IncomingMessage, limit: number): Readable | undefined {
  const cl = req.headers['content-length']
  const chunked = req.headers['transfer-encoding'] !== undefined
  if (!chunked && (cl === undefined || cl === '0')) return undefined
  if (!chunked) return req // Content-Length was checked against bodyLimit already; the parser enforces it
  let seen = 0
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length
      if (seen > limit) cb(new BodyLimitError('body over limit'))
      else cb(null, chunk)
    },
  })
  req.on('error', (e) => counter.destroy(e))
  return req.pipe(counter)
}
