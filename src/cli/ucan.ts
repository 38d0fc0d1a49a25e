// `portcullis ucan did|delegate|invoke` (DESIGN §1, §4.8): keys from PEM files, proofs from container
// files; prints a DID, a container, or the Authorization header line, or sends the request (--send).
import { readFile } from 'node:fs/promises'
import { Agent, request } from 'undici'
import { durationMs } from '../config/types.js'
import { ucanDelegation, ucanDid, ucanInvocation } from '../client/ucan.js'
import { parse, UsageError } from './args.js'

const USAGE = `usage: portcullis ucan did --key FILE
       portcullis ucan delegate --key FILE --aud DID (--sub DID | --powerline) --cmd CMD [--pol JSON] [--ttl 30d] [--proof FILE]...
       portcullis ucan invoke --key FILE --sub DID --cmd CMD --proof FILE [--aud DID] [--ttl 60s]
                              [-X METHOD] [-d @file|-d TEXT] [-H 'k: v']... URL [--send [-i]] [--cacert FILE]`

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === '--help' || sub === '-h' || rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  if (sub === 'did') return did(rest)
  if (sub === 'delegate') return delegateCmd(rest)
  if (sub === 'invoke') return invokeCmd(rest)
  throw new UsageError(USAGE)
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new Error(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
  }
}

async function did(argv: string[]): Promise<number> {
  const { values } = parse(argv, { key: { type: 'string' } })
  if (values.key === undefined) throw new UsageError('--key FILE is required\n' + USAGE)
  process.stdout.write(ucanDid(await readText(values.key, 'key')) + '\n')
  return 0
}

function seconds(text: string | undefined, def: number): number {
  if (text === undefined) return def
  if (!/^[0-9]+(ms|s|m|h|d)?$/.test(text)) throw new UsageError('--ttl takes a duration such as 60s, 10m, 30d')
  const s = Math.floor(durationMs(/[a-z]$/.test(text) ? text : Number(text)) / 1000)
  if (s < 1) throw new UsageError('--ttl must be at least 1s')
  return s
}

async function delegateCmd(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    key: { type: 'string' },
    aud: { type: 'string' },
    sub: { type: 'string' },
    powerline: { type: 'boolean' },
    cmd: { type: 'string' },
    pol: { type: 'string' },
    ttl: { type: 'string' },
    proof: { type: 'string', multiple: true },
  })
  if (values.key === undefined || values.aud === undefined || values.cmd === undefined) throw new UsageError('--key, --aud and --cmd are required\n' + USAGE)
  if ((values.sub === undefined) === (values.powerline !== true)) throw new UsageError('give exactly one of --sub DID or --powerline')
  let pol: unknown[] | undefined
  if (values.pol !== undefined) {
    try {
      pol = JSON.parse(values.pol) as unknown[]
    } catch {
      throw new UsageError('--pol takes a JSON list of policy statements')
    }
  }
  const proofs = await Promise.all(((values.proof ?? []) as string[]).map((f) => readText(f, 'proof')))
  const { container, cid } = ucanDelegation({
    key: await readText(values.key, 'key'),
    aud: values.aud,
    sub: values.powerline ? null : values.sub,
    cmd: values.cmd,
    ...(pol ? { pol } : {}),
    ttlS: seconds(values.ttl, 30 * 86_400),
    proofs,
  })
  process.stdout.write(container + '\n')
  // The CID is what a scheme's `revoked` lists; stderr, so stdout stays the container alone.
  process.stderr.write(`delegation CID: ${cid}\n`)
  return 0
}

async function invokeCmd(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      key: { type: 'string' },
      sub: { type: 'string' },
      cmd: { type: 'string' },
      proof: { type: 'string', multiple: true },
      aud: { type: 'string' },
      ttl: { type: 'string' },
      request: { type: 'string', short: 'X' },
      data: { type: 'string', short: 'd' },
      header: { type: 'string', short: 'H', multiple: true },
      send: { type: 'boolean' },
      include: { type: 'boolean', short: 'i' },
      cacert: { type: 'string' },
    },
    true,
  )
  if (positionals.length !== 1 || values.key === undefined || values.sub === undefined || values.cmd === undefined) throw new UsageError(USAGE)
  let url: URL
  try {
    url = new URL(positionals[0] as string)
  } catch {
    throw new UsageError(`not a URL: ${positionals[0]}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('URL must be http:// or https://')
  const headers = ((values.header ?? []) as string[]).map(parseHeader)
  let body: Buffer | undefined
  if (values.data !== undefined) {
    const file = values.data.startsWith('@') ? (values.data as string).slice(1) : undefined
    try {
      body = file !== undefined ? await readFile(file) : Buffer.from(values.data, 'utf8')
    } catch (err) {
      throw new Error(`cannot read body ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
    }
  }
  const method = (values.request ?? (body !== undefined ? 'POST' : 'GET')).toUpperCase()
  if (!/^[A-Z]+$/.test(method)) throw new UsageError('-X takes an HTTP method')
  const proofs = await Promise.all(((values.proof ?? []) as string[]).map((f) => readText(f, 'proof')))
  const { authorization } = ucanInvocation({
    key: await readText(values.key, 'key'),
    sub: values.sub,
    cmd: values.cmd,
    proofs,
    ...(values.aud !== undefined ? { aud: values.aud } : {}),
    ttlS: seconds(values.ttl, 60),
    method,
    target: url.pathname + url.search,
    ...(body ? { body } : {}),
  })
  if (!values.send) {
    process.stdout.write(`Authorization: ${authorization}\n`)
    return 0
  }
  const dispatcher = values.cacert ? new Agent({ connect: { ca: await readText(values.cacert, 'CA file') } }) : undefined
  let res
  try {
    res = await request(url, { method, headers: [...headers, ['authorization', authorization]].flat(), ...(body ? { body } : {}), ...(dispatcher ? { dispatcher } : {}) })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException }
    const code = e.code ?? e.cause?.code ?? ''
    const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)
    process.stderr.write(tls ? `ucan invoke: certificate verify failed: ${e.message}\n` : `ucan invoke: request failed: ${e.message}\n`)
    return 1
  }
  if (values.include) {
    process.stdout.write(`HTTP/1.1 ${res.statusCode}\n`)
    for (const [name, value] of Object.entries(res.headers)) for (const v of Array.isArray(value) ? value : [value]) process.stdout.write(`${name}: ${v}\n`)
    process.stdout.write('\n')
  }
  process.stdout.write(Buffer.from(await res.body.arrayBuffer()))
  const ok = res.statusCode >= 200 && res.statusCode < 300
  if (!ok) process.stderr.write(`ucan invoke: HTTP ${res.statusCode}\n`)
  return ok ? 0 : 1
}

function parseHeader(text: string): [string, string] {
  const at = text.indexOf(':')
  const name = at > 0 ? text.slice(0, at).trim() : ''
  if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) throw new UsageError(`-H takes 'Name: value', got ${JSON.stringify(text)}`)
  return [name, text.slice(at + 1).trim()]
}
