// The audit line: written by portcullis' own serializer into pino's destination, it must be exactly
// the line `logger.info(record, 'auth')` writes, byte for byte, and follow the logger's level.
import t from 'tap'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import fc from 'fast-check'
import { auditFields, createAuditLog, type AuditRecord } from '../../../src/observe/audit.js'

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

t.test('auditFields is JSON.stringify of the record, byte for byte, for any strings and numbers', async (t) => {
  // Any UTF-16 code units: control characters, quotes, backslashes, lone and paired surrogates.
  // Plain text with at most one character of each kind mixed in, so that each escape is tried alone.
  const special = fc.constantFrom('\\', '"', '\u0000', '\u001f', '\n', '\u007f', '\u2028', '\ud800', '\udfff', '\ud83d\ude00', 'é', '/')
  const plain = fc.string({ maxLength: 12 })
  const text = fc.oneof(
    fc.tuple(plain, special, plain).map(([a, c, b]) => a + c + b),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 12 }),
    fc.constantFrom('/pools/a', 'operator', 'token:ab12cd', '::1'),
  )
  const maybe = fc.option(text, { nil: null })
  const record = fc.record({
    event: fc.constantFrom('allow', 'deny', 'ratelimit', 'replay', 'report'),
    reqId: text,
    method: maybe,
    path: maybe,
    route: maybe,
    identity: maybe,
    authMethod: maybe,
    fp: maybe,
    reason: maybe,
    ip: text,
    status: fc.integer({ min: 100, max: 599 }),
    upstream: maybe,
    ms: fc.oneof(fc.double(), fc.integer(), fc.constantFrom(0.35, 12, -0, 1e21, 1e-7)),
    claimed: fc.option(maybe, { nil: undefined }),
  }) as fc.Arbitrary<AuditRecord>
  let checked = 0
  fc.assert(
    fc.property(record, (r) => {
      // Exchange.record writes the fields in this order, claimed last (and always; a record without it omits it).
      const ordered = { ...r }
      if (r.claimed === undefined) delete ordered.claimed
      checked++
      return auditFields(r) === JSON.stringify(ordered).slice(1, -1)
    }),
    { numRuns: 3000 },
  )
  t.equal(checked, 3000)
  t.equal(auditFields(record0()), JSON.stringify(record0()).slice(1, -1), 'the fixed record with every escape')
})

function record0(): AuditRecord {
  return { ...record }
}
