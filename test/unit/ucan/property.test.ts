// Property tests: random and mutated credentials never throw anything but a refusal, and a mutated
// container never verifies unless it still holds exactly the original tokens (e.g. a gzip header byte).
import t from 'tap'
import fc from 'fast-check'
import { ContainerError, decodeContainerText, encodeContainer } from '../../../src/ucan/container.js'
import { verifyContainerTokens } from '../../../src/ucan/verify.js'
import { chain, NOW } from './helpers.js'

const c = chain({ args: { method: 'POST', path: '/x' }, pol: [['==', '.method', 'POST']] })
const opts = { now: NOW, subjects: new Set([c.root.did]), maxInvocationTtl: 300 }
const originals = new Set(c.tokens.map((x) => Buffer.from(x).toString('hex')))

function attempt(text: string): boolean {
  let tokens: Uint8Array[]
  try {
    tokens = decodeContainerText(text)
  } catch (err) {
    if (err instanceof ContainerError) return false
    throw err
  }
  const v = verifyContainerTokens(tokens, opts)
  if (!v.ok) return false
  const same = tokens.length === originals.size && tokens.every((x) => originals.has(Buffer.from(x).toString('hex')))
  if (!same) throw new Error('a mutated container verified with other tokens')
  return true
}

t.test('random text never throws', async (t) => {
  fc.assert(fc.property(fc.constantFrom('B', 'C', 'O', 'P', 'X'), fc.string({ maxLength: 400 }), (h, s) => (attempt(h + s), true)), { numRuns: 2000 })
  t.pass()
})

t.test('single-character mutations of valid containers never verify with other tokens', async (t) => {
  const texts = (['B', 'C', 'O', 'P'] as const).map((header) => encodeContainer(c.tokens, { header }))
  for (const text of texts) t.ok(attempt(text), `${text[0]}: the original verifies`)
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_='
  fc.assert(
    fc.property(fc.constantFrom(...texts), fc.nat(), fc.constantFrom(...alphabet), (text, at, ch) => {
      const i = 1 + (at % (text.length - 1))
      attempt(text.slice(0, i) + ch + text.slice(i + 1))
      return true
    }),
    { numRuns: 3000 },
  )
  t.pass()
})

t.test('byte-level mutations of the token bytes never verify', async (t) => {
  fc.assert(
    fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), (at, xor, inv) => {
      const tokens = c.tokens.map((x) => new Uint8Array(x))
      const target = tokens[inv ? 0 : 1]!
      target[at % target.length]! ^= xor
      return !verifyContainerTokens(tokens, opts).ok
    }),
    { numRuns: 3000 },
  )
  t.pass()
})

t.test('random CBOR-shaped tokens never throw', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 4 }), (tokens) => {
      return !verifyContainerTokens(tokens, opts).ok
    }),
    { numRuns: 2000 },
  )
  t.pass()
})
