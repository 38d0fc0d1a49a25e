// The UCAN policy language (delegation spec §Policy): statements, jq-like selectors and their
// evaluation against an invocation's `args`. Parsing refuses anything outside the grammar; evaluation
// never throws, never reads inherited properties, and runs under a step budget (bounded CPU).
import { CID } from 'multiformats/cid'
import { bytesEqual, isBytes, isMap } from './cbor.js'

type Segment =
  | { kind: 'field'; key: string; optional: boolean }
  | { kind: 'index'; index: number; optional: boolean }
  | { kind: 'slice'; from?: number; to?: number; optional: boolean }
  | { kind: 'iterate'; optional: boolean }

export type Selector = readonly Segment[]

export type Statement =
  | { op: '==' | '!='; sel: Selector; value: unknown }
  | { op: '<' | '<=' | '>' | '>='; sel: Selector; value: number }
  | { op: 'like'; sel: Selector; parts: readonly string[] }
  | { op: 'not'; stmt: Statement }
  | { op: 'and' | 'or'; stmts: readonly Statement[] }
  | { op: 'all' | 'any'; sel: Selector; stmt: Statement }

export type Policy = readonly Statement[]

export class PolicyError extends Error {
  override name = 'PolicyError'
}

/** Evaluation steps one policy check may take (statements, elements visited). */
export const POLICY_STEP_BUDGET = 100_000

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*/
const INDEX = /^-?(?:0|[1-9][0-9]{0,8})$/
const SLICE = /^(-?(?:0|[1-9][0-9]{0,8}))?:(-?(?:0|[1-9][0-9]{0,8}))?$/

export function parseSelector(text: unknown): Selector {
  if (typeof text !== 'string' || text[0] !== '.') throw new PolicyError('a selector starts with "."')
  if (text === '.') return []
  const segments: Segment[] = []
  let i = 0
  while (i < text.length) {
    const c = text[i]
    if (c === '.') {
      i++
      if (text[i] === '[') continue
      const m = IDENT.exec(text.slice(i))
      if (!m) throw new PolicyError('"." must be followed by a field name or "["')
      segments.push({ kind: 'field', key: m[0], optional: false })
      i += m[0].length
    } else if (c === '[') {
      const end = bracketEnd(text, i)
      const inner = text.slice(i + 1, end)
      i = end + 1
      if (inner === '') segments.push({ kind: 'iterate', optional: false })
      else if (inner[0] === '"') {
        let key: unknown
        try {
          key = JSON.parse(inner)
        } catch {
          throw new PolicyError('bad quoted field name')
        }
        if (typeof key !== 'string') throw new PolicyError('bad quoted field name')
        segments.push({ kind: 'field', key, optional: false })
      } else if (INDEX.test(inner)) segments.push({ kind: 'index', index: Number(inner), optional: false })
      else {
        const m = SLICE.exec(inner)
        if (!m) throw new PolicyError('bad bracket selector')
        segments.push({ kind: 'slice', ...(m[1] !== undefined ? { from: Number(m[1]) } : {}), ...(m[2] !== undefined ? { to: Number(m[2]) } : {}), optional: false })
      }
    } else if (c === '?') {
      const last = segments[segments.length - 1]
      if (!last) throw new PolicyError('"?" must follow a segment')
      last.optional = true
      i++
    } else throw new PolicyError('unexpected character in selector')
  }
  return segments
}

/** Index of the `]` closing the bracket that opens at `start`, honouring a quoted key. */
function bracketEnd(text: string, start: number): number {
  let i = start + 1
  if (text[i] === '"') {
    i++
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1
    i++
  }
  const end = text.indexOf(']', i)
  if (end === -1 || (text[start + 1] === '"' && end !== i)) throw new PolicyError('unclosed "["')
  return end
}

/** A `like` pattern split at its unescaped `*`s; `\*` is a literal star, `\\` a literal backslash. */
export function parseGlob(pattern: unknown): string[] {
  if (typeof pattern !== 'string') throw new PolicyError('like takes a string pattern')
  const parts: string[] = ['']
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === '\\' && (pattern[i + 1] === '*' || pattern[i + 1] === '\\')) {
      parts[parts.length - 1] += pattern[++i]!
    } else if (c === '*') parts.push('')
    else parts[parts.length - 1] += c
  }
  return parts
}

export function parsePolicy(value: unknown): Policy {
  if (!Array.isArray(value)) throw new PolicyError('a policy is a list of statements')
  return value.map(parseStatement)
}

export function parseStatement(value: unknown): Statement {
  if (!Array.isArray(value) || typeof value[0] !== 'string') throw new PolicyError('a statement is [operator, ...]')
  const [op, a, b] = value as [string, unknown, unknown]
  const arity = (n: number) => {
    if (value.length !== n) throw new PolicyError(`${op} takes ${n - 1} arguments`)
  }
  switch (op) {
    case '==':
    case '!=':
      arity(3)
      return { op, sel: parseSelector(a), value: b }
    case '<':
    case '<=':
    case '>':
    case '>=':
      arity(3)
      if (typeof b !== 'number' || !Number.isFinite(b)) throw new PolicyError(`${op} compares with a number`)
      return { op, sel: parseSelector(a), value: b }
    case 'like':
      arity(3)
      return { op, sel: parseSelector(a), parts: parseGlob(b) }
    case 'not':
      arity(2)
      return { op, stmt: parseStatement(a) }
    case 'and':
    case 'or':
      arity(2)
      if (!Array.isArray(a)) throw new PolicyError(`${op} takes a list of statements`)
      return { op, stmts: a.map(parseStatement) }
    case 'all':
    case 'any':
      arity(3)
      return { op, sel: parseSelector(a), stmt: parseStatement(b) }
    default:
      throw new PolicyError('unknown operator')
  }
}

class BudgetExceeded extends Error {}
interface Budget {
  steps: number
}

const FAIL = Symbol('unresolved')
type Resolved = unknown | typeof FAIL

/** Does `args` satisfy every statement? False (never a throw) when the budget runs out. */
export function evaluatePolicy(policy: Policy, args: unknown, budget: Budget = { steps: POLICY_STEP_BUDGET }): boolean {
  try {
    return policy.every((s) => evaluate(s, args, budget))
  } catch (err) {
    if (err instanceof BudgetExceeded) return false
    throw err
  }
}

function spend(budget: Budget, n = 1): void {
  budget.steps -= n
  if (budget.steps < 0) throw new BudgetExceeded()
}

function evaluate(s: Statement, data: unknown, budget: Budget): boolean {
  spend(budget)
  switch (s.op) {
    case '==':
    case '!=': {
      const v = select(s.sel, data, budget)
      if (v === FAIL) return false
      return deepEqual(v, s.value, budget) === (s.op === '==')
    }
    case '<':
    case '<=':
    case '>':
    case '>=': {
      const v = select(s.sel, data, budget)
      if (typeof v !== 'number') return false
      return s.op === '<' ? v < s.value : s.op === '<=' ? v <= s.value : s.op === '>' ? v > s.value : v >= s.value
    }
    case 'like': {
      const v = select(s.sel, data, budget)
      if (typeof v !== 'string') return false
      spend(budget, Math.ceil(v.length / 64))
      return globMatch(s.parts, v)
    }
    case 'not':
      return !evaluate(s.stmt, data, budget)
    case 'and':
      return s.stmts.every((t) => evaluate(t, data, budget))
    case 'or':
      return s.stmts.length === 0 || s.stmts.some((t) => evaluate(t, data, budget))
    case 'all':
    case 'any': {
      const v = select(s.sel, data, budget)
      const items = Array.isArray(v) ? v : isMap(v) ? Object.values(v) : undefined
      if (items === undefined) return false
      return s.op === 'all' ? items.every((x) => evaluate(s.stmt, x, budget)) : items.some((x) => evaluate(s.stmt, x, budget))
    }
  }
}

/** Resolve a selector; FAIL when a segment cannot be resolved (a missing map key is null, not FAIL). */
export function select(sel: Selector, data: unknown, budget: Budget = { steps: POLICY_STEP_BUDGET }): Resolved {
  let cur: unknown = data
  for (let i = 0; i < sel.length; i++) {
    spend(budget)
    const seg = sel[i]!
    let next: Resolved = FAIL
    switch (seg.kind) {
      case 'field':
        if (isMap(cur)) next = Object.hasOwn(cur, seg.key) ? cur[seg.key] : null
        break
      case 'index':
        if (Array.isArray(cur) || isBytes(cur)) {
          const at = seg.index < 0 ? cur.length + seg.index : seg.index
          if (at >= 0 && at < cur.length) next = cur[at]
        }
        break
      case 'slice':
        if (Array.isArray(cur) || isBytes(cur)) next = Array.isArray(cur) ? cur.slice(seg.from, seg.to) : cur.slice(seg.from, seg.to)
        break
      case 'iterate': {
        const items = Array.isArray(cur) ? cur : isMap(cur) ? Object.values(cur) : undefined
        if (items === undefined) break
        // The rest of the selector applies to every child; one child that fails fails the whole.
        const rest = sel.slice(i + 1)
        const out: unknown[] = []
        for (const item of items) {
          const r = select(rest, item, budget)
          if (r === FAIL) return seg.optional ? null : FAIL
          out.push(r)
        }
        return out
      }
    }
    if (next === FAIL) {
      if (!seg.optional) return FAIL
      next = null
    }
    cur = next
  }
  return cur
}

function globMatch(parts: readonly string[], s: string): boolean {
  if (parts.length === 1) return s === parts[0]
  const first = parts[0]!
  const last = parts[parts.length - 1]!
  if (s.length < first.length + last.length || !s.startsWith(first) || !s.endsWith(last)) return false
  // Leftmost match of each middle part is optimal for `*`-only globs.
  let at = first.length
  const end = s.length - last.length
  for (let i = 1; i < parts.length - 1; i++) {
    const p = parts[i]!
    const found = s.indexOf(p, at)
    if (found === -1 || found + p.length > end) return false
    at = found + p.length
  }
  return true
}

/** IPLD deep equality; integers and floats compare by value (1 == 1.0). */
export function deepEqual(a: unknown, b: unknown, budget: Budget = { steps: POLICY_STEP_BUDGET }): boolean {
  spend(budget)
  if (a === null || b === null) return a === b
  if (typeof a === 'number' || typeof a === 'bigint') return (typeof b === 'number' || typeof b === 'bigint') && a == b // eslint-disable-line eqeqeq
  if (typeof a === 'string' || typeof a === 'boolean') return a === b
  if (isBytes(a)) return isBytes(b) && bytesEqual(a, b)
  const ca = CID.asCID(a)
  if (ca) {
    const cb = CID.asCID(b)
    return cb !== null && ca.equals(cb)
  }
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i], budget))
  if (isMap(a)) {
    if (!isMap(b)) return false
    const ka = Object.keys(a)
    if (ka.length !== Object.keys(b).length) return false
    return ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k], budget))
  }
  return false
}
