// How hard the property tests push: a fixed seed and few runs in `npm test` (a few seconds), many
// more with `npm run test:fuzz` (FUZZ_RUNS, and FUZZ_SEED to replay a failure fast-check printed;
// that script also raises tap's per-file timeout through TAP_TIMEOUT).
import fc from 'fast-check'
import type { Test } from 'tap'

/** Runs per property: FUZZ_RUNS when set (test:fuzz), else `small`. */
export function runs(small: number): number {
  const n = Number(process.env.FUZZ_RUNS)
  return Number.isSafeInteger(n) && n > 0 ? n : small
}

/** The seed: fixed unless FUZZ_SEED says otherwise, so `npm test` is reproducible. */
export const SEED = Number.isSafeInteger(Number(process.env.FUZZ_SEED)) && process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0x5eed_10

/** fast-check parameters for one property; `small` is the default-run budget. */
export function params(small: number): fc.Parameters<unknown> {
  return { seed: SEED, numRuns: runs(small), endOnFailure: false, verbose: 1 }
}

/** Bytes as Node presents header and target text: one latin1 character per byte. */
export const latin1Char = fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c))
export const latin1String = (max = 64) => fc.string({ unit: latin1Char, maxLength: max })

/** Characters an attacker likes at a boundary: separators, whitespace of every kind, escapes. */
export const trickyChar = fc.constantFrom(
  ' ', '\t', '\r', '\n', '\0', '\x0b', '\x0c', '\x7f', '\u00a0', '\u0085', '\u00ff', '\u0080',
  ',', ';', ':', '=', '"', '\\', '/', '%', '.', '?', '#', '@', '*', '(', ')', '+', '-', '_', '~', 'A', 'a', '0', 'f', 'F',
)

/**
 * A mutation of `s`: one character replaced, inserted or deleted, a cut, a doubling, or a case flip —
 * always different from `s`. `alphabet` supplies the characters that get inserted or written.
 */
export function mutation(s: string, alphabet: fc.Arbitrary<string> = fc.oneof(trickyChar, latin1Char)): fc.Arbitrary<string> {
  return fc
    .tuple(fc.nat({ max: Math.max(0, s.length) }), fc.integer({ min: 0, max: 6 }), alphabet, fc.nat({ max: Math.max(0, s.length) }))
    .map(([at, op, c, other]) => {
      switch (op) {
        case 0:
          return s.slice(0, at) + c + s.slice(at + 1) // replace
        case 1:
          return s.slice(0, at) + c + s.slice(at) // insert
        case 2:
          return s.slice(0, at) + s.slice(at + 1) // delete
        case 3:
          return s.slice(0, Math.min(at, other)) // cut
        case 4:
          return s + s.slice(Math.min(at, other), Math.max(at, other)) // append a piece of itself
        case 5: {
          const ch = s.charAt(at)
          const flipped = ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase()
          return s.slice(0, at) + flipped + s.slice(at + 1) // case flip
        }
        default:
          return s.slice(0, at) + c + c + s.slice(at) // a doubled insertion
      }
    })
    .filter((m) => m !== s)
}

/**
 * Node hands a header value over only when its bytes are HTAB, SP, visible ASCII or obs-text, with
 * SP/HTAB around it already stripped: what an authenticator can actually receive.
 */
export function deliverable(value: string): string {
  return value.replace(/[^\t\x20-\x7e\x80-\xff]/g, '').replace(/^[ \t]+|[ \t]+$/g, '')
}

/** Asserts a property and reports its counterexample as one failing assertion (never as a bare rejection). */
export async function holds(t: Test, name: string, property: fc.IProperty<any> | fc.IAsyncProperty<any>, parameters: fc.Parameters<unknown>): Promise<void> {
  try {
    await fc.assert(property as fc.IAsyncProperty<unknown>, parameters)
    t.pass(name)
  } catch (err) {
    t.fail(`${name}: ${(err as Error).message.split('\n').filter((l) => l.trim() !== '').slice(0, 8).join(' | ')}`)
  }
}
