// Shared stand-ins for the step tests: an IncomingMessage-like request, a Reply that records what was
// written, a DecisionListener that records audit lines, and a Runtime around a real compiled Gateway
// (loadConfigText) and the memory store. Nothing here opens a socket.
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { pino } from 'pino'
import { loadConfigText } from '../../../src/config/load.js'
import type { Gateway } from '../../../src/config/compile.js'
import { createState } from '../../../src/state/index.js'
import type { AuditRecord, DecisionDetail, DecisionListener } from '../../../src/observe/audit.js'
import type { Reply } from '../../../src/reply.js'
import type { Runtime } from '../../../src/runtime.js'
import type { UpstreamPools } from '../../../src/proxy/forward.js'
import { Exchange } from '../../../src/exchange.js'
import { clientAddress } from '../../../src/policy/client-address.js'

export const OPS_TOKEN = 'ops-' + 'a1b2c3d4'.repeat(5)
export const READER_TOKEN = 'rdr-' + 'e5f6a7b8'.repeat(5)
export const WORKER_SECRET = 'worker-secret-' + '0123456789abcdef'.repeat(2)
export const MASTER = 'master-' + '0123456789abcdef'.repeat(2)
export const JOIN_PSK = 'join-psk-' + '0123456789abcdef'.repeat(2)
export const ENV = { OPS_TOKEN, READER_TOKEN, WORKER_SECRET, MASTER, JOIN_PSK }
export const JOIN_PATH = '/_portcullis/join'

/** One config exercising every step: a public route, a prefix covering the join path, roles, loopback, limits, report-only. */
export const CONFIG = `version: 1
server:
  listen: 127.0.0.1:0
  bodyLimit: 1kb
  trustProxy: [127.0.0.1/32]
upstreams:
  be: { url: "http://127.0.0.1:9" }
identities:
  - name: ops
    roles: [admin]
    bearer: "\${env:OPS_TOKEN}"
  - name: reader
    roles: [reader]
    bearer: "\${env:READER_TOKEN}"
schemes:
  workers:
    type: worker-v1
    secret: "\${env:WORKER_SECRET}"
    window: 5m
    roles: [worker]
  signed:
    type: rfc9421
    window: 60s
    derive: "\${env:MASTER}"
    roles: [worker]
join:
  path: ${JOIN_PATH}
  psk: "\${env:JOIN_PSK}"
  scheme: signed
routes:
  - { path: /health, methods: [GET], upstream: be, public: true }
  - { prefix: /_portcullis/, upstream: be, public: true }
  - { path: /admin, methods: [GET, POST], upstream: be, auth: [bearer], roles: [admin] }
  - { path: /local, upstream: be, auth: [bearer], loopback: allow }
  - { path: /work, methods: [POST], upstream: be, auth: [workers], rateLimit: { max: 5, window: 1m, by: identity } }
  - { path: /limited, upstream: be, auth: [bearer], rateLimit: { max: 1, window: 1m, by: identity } }
  - { path: /slots, upstream: be, auth: [bearer], concurrency: { max: 1, by: identity } }
  - { prefix: /legacy/, upstream: be, auth: [bearer], roles: [admin], enforce: report }
defaults:
  authFailures: { max: 2, window: 1m }
`

export function loadGateway(text = CONFIG, env: Record<string, string> = ENV): Gateway {
  const r = loadConfigText(text, '/etc/portcullis/gateway.yaml', env)
  if (!r.ok) throw new Error('test config does not load: ' + r.errors.map((e) => `${e.line}:${e.col} ${e.message}`).join('; '))
  return r.gateway
}

export interface FakeRequestOptions {
  method?: string
  url?: string
  httpVersion?: string
  /** In wire order; a name may repeat. Host defaults to one `gw.test` unless `noHost`. */
  headers?: Array<[string, string]>
  noHost?: boolean
  remoteAddress?: string
}

/** An IncomingMessage as far as the steps read it: headers as Node folds them, rawHeaders as sent. */
export function fakeRequest(o: FakeRequestOptions = {}): IncomingMessage {
  const pairs: Array<[string, string]> = [...(o.noHost ? [] : [['host', 'gw.test'] as [string, string]]), ...(o.headers ?? [])]
  const headers: Record<string, string | string[]> = {}
  const rawHeaders: string[] = []
  const headersDistinct: Record<string, string[]> = {}
  for (const [name, value] of pairs) {
    rawHeaders.push(name, value)
    const k = name.toLowerCase()
    ;(headersDistinct[k] ??= []).push(value)
    const prev = headers[k]
    if (prev === undefined) headers[k] = k === 'set-cookie' ? [value] : value
    // Node keeps the first of a duplicated singleton (host, content-length...), joins the others.
    else if (Array.isArray(prev)) prev.push(value)
    else if (k !== 'host' && k !== 'content-length' && k !== 'authorization') headers[k] = `${prev}, ${value}`
  }
  const [maj, min] = (o.httpVersion ?? '1.1').split('.')
  return {
    method: o.method ?? 'GET',
    url: o.url ?? '/',
    httpVersion: o.httpVersion ?? '1.1',
    httpVersionMajor: Number(maj),
    httpVersionMinor: Number(min),
    headers,
    headersDistinct,
    rawHeaders,
    socket: { remoteAddress: o.remoteAddress ?? '10.1.2.3' },
    destroyed: false,
  } as unknown as IncomingMessage
}

export interface Written {
  status: number
  body: { error: string; code: string; requestId: string }
  headers: OutgoingHttpHeaders
  close: boolean
}

export interface RecordingReply extends Reply {
  written: Written[]
  aborted: number
}

export function recordingReply(): RecordingReply {
  const r: RecordingReply = {
    written: [],
    aborted: 0,
    get started() {
      return r.written.length > 0
    },
    json(status, body, headers, close) {
      r.written.push({ status, body: JSON.parse(body), headers, close })
    },
    abort() {
      r.aborted++
    },
  }
  return r
}

export interface Recorder extends DecisionListener {
  records: Array<{ record: AuditRecord; detail: DecisionDetail | undefined }>
}

export function recorder(): Recorder {
  const r: Recorder = {
    records: [],
    decision(record, detail) {
      r.records.push({ record, detail })
    },
  }
  return r
}

export interface TestRuntime extends Runtime {
  audit: Recorder
  /** Every JSON line the runtime's logger wrote. */
  logLines: () => Array<Record<string, unknown>>
}

let runtimes = 0

/** A Runtime over a real compiled gateway and a fresh memory store; forwarding is never reached. */
let shared: Gateway | undefined

/** A compiled gateway is read-only: one per test process is enough (each runtime gets its own store). */
export async function testRuntime(gateway: Gateway = (shared ??= loadGateway())): Promise<TestRuntime> {
  const lines: string[] = []
  // A plain destination: pino writes to it synchronously, so a line is there once the call returns.
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) })
  const state = await createState({ store: 'memory', timeoutMs: 1000, onStoreError: 'deny', replicas: 1, maxEntries: 10_000 })
  const audit = recorder()
  const n = ++runtimes
  let ids = 0
  return {
    gateway,
    state,
    pools: {} as UpstreamPools,
    listeners: [audit],
    logger,
    tls: false,
    newRequestId: () => `req-${n}-${++ids}`,
    audit,
    logLines: () => lines.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  }
}

/** A new Exchange on `req` with a recording reply; the client address as the pipeline computes it. */
export function exchangeFor(rt: Runtime, req: IncomingMessage): { x: Exchange; reply: RecordingReply } {
  const reply = recordingReply()
  return { x: new Exchange(rt, req, reply, clientAddress(req, rt.gateway)), reply }
}
