// The audit line: written by portcullis' own serializer into pino's destination, it must be exactly
// the line `logger.info(record, 'auth')` writes, byte for byte, and follow the logger's level.
import t from 'tap'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import { createAuditLog, type AuditRecord } from '../../../src/observe/audit.js'

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean))
      cb()
    },
  })
  return { lines, stream }
}

const record: AuditRecord = {
  event: 'deny',
  reqId: '6f1c2a6e-3b1a-4c55-9a57-1a0c5d6d2b11',
  method: 'GET',
  path: '/pools/"quoted"\\back\u0001ctl/é/\ud83d\ude00/\ud800',
  route: '/pools/',
  identity: null,
  authMethod: 'bearer',
  fp: 'token:abc123',
  reason: 'INVALID_CREDENTIALS',
  ip: '::1',
  status: 401,
  upstream: null,
  ms: 0.35,
  claimed: null,
}

t.test('the same line as pino writes, for every shape of record', async (t) => {
  const ours = capture()
  const theirs = capture()
  const now = () => ',"time":1700000000000'
  const a = pino({ base: { pid: 42 }, timestamp: now }, ours.stream)
  const b = pino({ base: { pid: 42 }, timestamp: now }, theirs.stream)
  const audit = createAuditLog(a)
  const records = [record, { ...record, event: 'allow' as const, identity: 'orchestratord', reason: null, status: 200, upstream: 'pool-manager' }, { ...record, method: null, path: null, route: null }]
  for (const r of records) {
    audit.decision(r)
    b.info(r, 'auth')
  }
  await new Promise((r) => setImmediate(r))
  t.equal(ours.lines.length, 3)
  t.same(ours.lines, theirs.lines, 'byte for byte')
  // The comparison above is only worth something if our serializer wrote those lines, not pino.
  a.info = (() => t.fail('pino wrote the audit line')) as never
  audit.decision(record)
  await new Promise((r) => setImmediate(r))
  t.equal(ours.lines.length, 4, 'written without logger.info')
})

t.test('follows the logger level, and steps aside for a logger it cannot reproduce', async (t) => {
  const quiet = capture()
  const warnOnly = pino({ level: 'warn' }, quiet.stream)
  const audit = createAuditLog(warnOnly)
  audit.decision(record)
  await new Promise((r) => setImmediate(r))
  t.equal(quiet.lines.length, 0, 'no auth line below the level')
  warnOnly.level = 'info'
  audit.decision(record)
  await new Promise((r) => setImmediate(r))
  t.equal(quiet.lines.length, 1, 'a level raised later is followed')

  const mixed = capture()
  const withMixin = pino({ mixin: () => ({ extra: 1 }) }, mixed.stream)
  createAuditLog(withMixin).decision(record)
  await new Promise((r) => setImmediate(r))
  t.match(mixed.lines[0], /"extra":1/, 'a mixin: pino writes the line itself')
})
