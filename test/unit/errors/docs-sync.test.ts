// The error table of docs/configuration.md and src/errors.ts agree both ways: every code the gateway can
// send is documented with its status, and every documented code exists (fastify's errors docs test).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ERRORS } from '../../../src/errors.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')
const doc = readFileSync(join(root, 'docs', 'configuration.md'), 'utf8')

/** code → status from the table under "Responses portcullis makes itself". */
function documented(): Map<string, number> {
  const section = doc.slice(doc.indexOf('## Responses portcullis makes itself'))
  const table = section.slice(0, section.indexOf('\n## '))
  const out = new Map<string, number>()
  for (const line of table.split('\n')) {
    const m = /^\| (\d{3}) \| ([^|]+) \|/.exec(line)
    if (!m) continue
    for (const code of m[2]!.matchAll(/`([A-Z_]+)`/g)) out.set(code[1]!, Number(m[1]))
  }
  return out
}

t.test('every code of src/errors.ts is in the docs table with its status', async (t) => {
  const docs = documented()
  for (const [code, { status }] of Object.entries(ERRORS)) t.equal(docs.get(code), status, `${code} documented as ${status}`)
})

t.test('every code in the docs table exists in src/errors.ts with that status', async (t) => {
  const docs = documented()
  t.ok(docs.size >= 10, 'the table was found')
  for (const [code, status] of docs) t.equal(ERRORS[code as keyof typeof ERRORS]?.status, status, `${code} is a code of the gateway`)
})
