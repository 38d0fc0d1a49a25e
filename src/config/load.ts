// Reads gateway.yaml: YAML with positions → schema validation (ajv, defaults filled) → compile.
// Every problem becomes one Finding with file, line and column; values of secrets are never quoted.
import { readFile } from 'node:fs/promises'
import { Ajv, type ErrorObject } from 'ajv'
import { Value } from '@sinclair/typebox/value'
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml'
import { GatewayConfigSchema, SCHEME_SCHEMAS, type GatewayConfigFile } from './schema.js'
import type { CompileContext, ConfigPath } from './types.js'
import { resolveSecret } from './secrets.js'
import { compileGateway, type Gateway } from './compile.js'
import { readFileSync } from 'node:fs'

export interface Finding {
  file: string
  line: number
  col: number
  severity: 'error' | 'warning'
  message: string
}

export type LoadResult =
  | { ok: true; gateway: Gateway; warnings: Finding[]; position(path: ConfigPath): { line: number; col: number } }
  | { ok: false; errors: Finding[]; warnings: Finding[] }

export function formatFinding(f: Finding): string {
  return `${f.file}:${f.line}:${f.col}: ${f.severity}: ${f.message}`
}

// verbose: errors carry their parentSchema, whose description and consts make the messages below.
// useDefaults: validating fills in every default the schema declares, except inside a union (ajv cannot
// know the branch, e.g. `rateLimit: {…} | false`): a part that validated gets those from TypeBox's
// Value.Default, which picks the branch that checks. Defaults live in the schema only.
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true })
const validateFile = ajv.compile<unknown>(GatewayConfigSchema)
const validateScheme = Object.fromEntries(Object.entries(SCHEME_SCHEMAS).map(([k, s]) => [k, ajv.compile(s)]))

/** `routes[2].auth[0]` from ['routes', 2, 'auth', 0]. */
export function fieldName(path: ConfigPath): string {
  let out = ''
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`
  return out || '(top level)'
}

/** Positions of YAML nodes, so any path into the config can be reported as line:col. */
class Positions {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** The node at `path` (or its nearest existing ancestor); `key: true` points at the map key. */
  at(path: ConfigPath, key = false): { line: number; col: number } {
    let node: unknown = this.doc.contents
    let offset = 0
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg))
        if (!pair) break
        const last = i === path.length - 1
        const target = last && key ? pair.key : (pair.value ?? pair.key)
        node = target
        offset = (target as Node | null)?.range?.[0] ?? offset
        continue
      }
      if (isSeq(node) && typeof seg === 'number' && node.items[seg]) {
        node = node.items[seg]
        offset = (node as Node).range?.[0] ?? offset
        continue
      }
      break
    }
    if (offset === 0 && (node as Node | null)?.range) offset = (node as Node).range![0]
    const p = this.lines.linePos(offset)
    return { line: p.line, col: p.col }
  }
}

/**
 * Where toJS() gave up: the alias that took a scalar anchor past the library's default of 100 uses (the
 * anchor itself counts one), else the first alias, else the top of the file.
 */
function libraryLimitPosition(doc: Document, lines: LineCounter): { line: number; col: number } {
  const aliases: number[] = []
  visit(doc, {
    Alias(_key, node) {
      if (node.range) aliases.push(node.range[0])
    },
  })
  const offset = aliases[99] ?? aliases[0]
  if (offset === undefined) return { line: 1, col: 1 }
  const p = lines.linePos(offset)
  return { line: p.line, col: p.col }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function ajvPath(instancePath: string): (string | number)[] {
  if (!instancePath) return []
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^[0-9]+$/.test(s) ? Number(s) : s))
}

/** One readable message per problem: union branches at one path collapse into a single line. */
function describeAjvErrors(errors: ErrorObject[], base: ConfigPath): { path: ConfigPath; key: boolean; message: string }[] {
  const unionPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath))
  // Inside a union such as `rateLimit: {…} | false`, an unknown or missing key of the object branch, or
  // any error further down, says more than the union's summary: report those and drop the summary.
  const specific = (e: ErrorObject) => e.keyword === 'additionalProperties' || e.keyword === 'required'
  const explained = new Set<string>()
  for (const e of errors) {
    if (e.keyword === 'anyOf') continue
    for (const p of unionPaths) if ((e.instancePath === p && specific(e)) || e.instancePath.startsWith(p + '/')) explained.add(p)
  }
  const out: { path: ConfigPath; key: boolean; message: string }[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    const path = [...base, ...ajvPath(e.instancePath)]
    const field = fieldName(path)
    let item: { path: ConfigPath; key: boolean; message: string }
    if (e.keyword === 'anyOf' && explained.has(e.instancePath)) continue
    if (e.keyword !== 'anyOf' && unionPaths.has(e.instancePath) && !specific(e)) continue
    switch (e.keyword) {
      case 'additionalProperties': {
        const prop = (e.params as { additionalProperty: string }).additionalProperty
        item = { path: [...path, prop], key: true, message: `${fieldName([...path, prop])}: unknown key "${prop}"` }
        break
      }
      case 'required':
        item = { path, key: false, message: `${field}: missing required key "${(e.params as { missingProperty: string }).missingProperty}"` }
        break
      case 'anyOf': {
        const desc = (e.parentSchema as { description?: string; anyOf?: { const?: unknown }[] }) ?? {}
        const consts = (desc.anyOf ?? []).map((b) => b.const)
        const allConsts = consts.length > 0 && consts.every((c) => c !== undefined)
        const expected = desc.description ?? (allConsts ? `one of ${consts.map((c) => JSON.stringify(c)).join(', ')}` : 'a valid value')
        item = { path, key: false, message: `${field}: must be ${expected}` }
        break
      }
      case 'const':
        item = { path, key: false, message: `${field}: must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}` }
        break
      case 'pattern': {
        const desc = (e.parentSchema as { description?: string })?.description
        item = { path, key: false, message: `${field}: must be ${desc ?? `a value matching ${(e.params as { pattern: string }).pattern}`}` }
        break
      }
      default:
        item = { path, key: false, message: `${field}: ${e.message ?? 'is invalid'}` }
    }
    const id = item.message
    if (!seen.has(id)) {
      seen.add(id)
      out.push(item)
    }
  }
  return out
}

export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable'
    return { ok: false, errors: [{ file, line: 1, col: 1, severity: 'error', message: `cannot read config file (${code})` }], warnings: [] }
  }
  return loadConfigText(text, file, env)
}

export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false })
  const errors: Finding[] = []
  const warnings: Finding[] = []
  for (const e of doc.errors) {
    // prettyErrors is off, so linePos is not filled in: place the error from its offset.
    const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0])
    errors.push({ file, line: pos.line, col: pos.col, severity: 'error', message: `YAML: ${e.message.split('\n')[0]}` })
  }
  if (errors.length) return { ok: false, errors, warnings }

  const positions = new Positions(doc, lines)
  let data: unknown
  try {
    // The library's own limits stay at its defaults (maxAliasCount 100): past them it throws here.
    data = doc.toJS()
  } catch (err) {
    const { line, col } = libraryLimitPosition(doc, lines)
    errors.push({ file, line, col, severity: 'error', message: `YAML: ${(err as Error).message}` })
    return { ok: false, errors, warnings }
  }
  const push = (list: Finding[], severity: Finding['severity'], path: ConfigPath, message: string, key = false) => {
    const { line, col } = positions.at(path, key)
    list.push({ file, line, col, severity, message })
  }

  // Where the schema refused something: compile still runs on the rest of the file (every problem, one
  // run), but says nothing more about those sections (one root cause, one error).
  const refused: ConfigPath[] = []
  if (!validateFile(data)) {
    for (const d of describeAjvErrors(validateFile.errors ?? [], [])) {
      push(errors, 'error', d.path, d.message, d.key)
      refused.push(d.path)
    }
  } else Value.Default(GatewayConfigSchema, data)
  // Scheme bodies are checked even when the rest of the file has problems: every problem, one run.
  const schemes = isObject(data) && isObject(data.schemes) ? data.schemes : {}
  for (const [name, spec] of Object.entries(schemes)) {
    const type = isObject(spec) && typeof spec.type === 'string' && Object.hasOwn(validateScheme, spec.type) ? spec.type : undefined
    const validate = type === undefined ? undefined : validateScheme[type]!
    if (validate && !validate(spec)) {
      for (const d of describeAjvErrors(validate.errors ?? [], ['schemes', name])) {
        push(errors, 'error', d.path, d.message, d.key)
        refused.push(d.path)
      }
    } else if (type !== undefined) Value.Default(SCHEME_SCHEMAS[type]!, spec)
  }
  const schemaFailed = errors.length > 0
  // A refusal of the whole document (not a map, a required top-level key missing) leaves nothing to compile.
  if (refused.some((p) => p.length === 0) || !isObject(data)) return { ok: false, errors, warnings }
  // A section with a default that the schema refused as a whole (`forward:` left empty is null) is compiled
  // as absent, with its defaults (validating again fills them in); compile stays quiet about it anyway.
  const shapeless = Object.entries(GatewayConfigSchema.properties).filter(([key, part]) => part.default !== undefined && data[key] !== undefined && !isObject(data[key]))
  for (const [key] of shapeless) delete data[key]
  if (shapeless.length > 0) validateFile(data)
  /** In a section (`routes[3]`, `schemes.x`, `server.tls`) the schema already refused: stay quiet there. */
  const quiet = (path: ConfigPath) =>
    refused.some((p) => {
      const k = Math.min(2, p.length, path.length)
      for (let i = 0; i < k; i++) if (String(p[i]) !== String(path[i])) return false
      return true
    })
  const record = (list: Finding[], severity: Finding['severity'], path: ConfigPath, message: string) => {
    if (!quiet(path)) push(list, severity, path, `${fieldName(path)}: ${message}`)
  }

  const ctx: CompileContext = {
    file,
    error: (path, message) => record(errors, 'error', path, message),
    warn: (path, message) => record(warnings, 'warning', path, message),
    secret: (path, ref) => {
      const r = resolveSecret(ref, env)
      if (r.ok) return r.value
      record(errors, 'error', path, r.message)
      return undefined
    },
    readFile: (path, filePath) => {
      try {
        return readFileSync(filePath)
      } catch (err) {
        record(errors, 'error', path, `cannot read ${filePath} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`)
        return undefined
      }
    },
  }
  let gateway: Gateway
  try {
    gateway = compileGateway(data as GatewayConfigFile, ctx, env, (path) => positions.at(path))
  } catch (err) {
    // On a file the schema refused, compile is best effort (its findings add to the schema's). Otherwise this
    // is a bug in a compile step: still a located config error, never an unhandled rejection (on reload
    // that would be silent, and uncounted).
    if (!schemaFailed) errors.push({ file, line: 1, col: 1, severity: 'error', message: `config could not be compiled: ${(err as Error).message}` })
  }
  if (errors.length) return { ok: false, errors, warnings }
  return { ok: true, gateway: gateway!, warnings, position: (path) => positions.at(path) }
}
