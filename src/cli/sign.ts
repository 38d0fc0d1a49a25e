// `portcullis sign`: sign one request (worker-v1 or rfc9421) and print the headers, or send it (--send).
// Reads the secret only from the named environment variable; never prints it.
import { readFile } from 'node:fs/promises'
import { request, type Dispatcher } from 'undici'
import { KEY_ID_PATTERN } from '../auth/rfc9421.js'
import { signRfc9421 } from '../client/rfc9421.js'
import { signWorkerV1 } from '../client/worker-v1.js'
import { describeSendFailure } from '../client/tls.js'
import { parse, UsageError } from './args.js'
import { CaFileError, dispatcherFor } from './cacert.js'
import { USAGES } from './usage.js'

const USAGE = USAGES.sign!.trimEnd()

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      scheme: { type: 'string' },
      id: { type: 'string' },
      'key-id': { type: 'string' },
      'secret-env': { type: 'string' },
      request: { type: 'string', short: 'X' },
      data: { type: 'string', short: 'd' },
      header: { type: 'string', short: 'H', multiple: true },
      send: { type: 'boolean' },
      include: { type: 'boolean', short: 'i' },
      cacert: { type: 'string' },
    },
    true,
  )
  if (positionals.length !== 1) throw new UsageError(USAGE)
  const url = parseUrl(positionals[0] as string)
  const headers = (values.header ?? []).map(parseHeader)
  const scheme = values.scheme
  if (scheme !== 'worker-v1' && scheme !== 'rfc9421') throw new UsageError('--scheme must be worker-v1 or rfc9421\n' + USAGE)
  if (scheme === 'worker-v1' && values.id === undefined) throw new UsageError('--scheme worker-v1 needs --id ID')
  if (scheme === 'rfc9421' && values['key-id'] === undefined) throw new UsageError('--scheme rfc9421 needs --key-id ID')
  if (scheme === 'rfc9421' && !KEY_ID_PATTERN.test(values['key-id'] as string)) {
    throw new UsageError('--key-id must be 1 to 256 printable ASCII characters without spaces')
  }
  const envName = values['secret-env']
  if (envName === undefined) throw new UsageError('--secret-env VAR is required\n' + USAGE)
  const secret = process.env[envName]
  if (secret === undefined || secret === '') {
    process.stderr.write(`sign: environment variable ${envName} is not set\n`)
    return 1
  }
  let body: Buffer | undefined
  if (values.data !== undefined) {
    try {
      body = values.data.startsWith('@') ? await readFile(values.data.slice(1)) : Buffer.from(values.data, 'utf8')
    } catch (err) {
      process.stderr.write(`sign: cannot read ${values.data.slice(1)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}\n`)
      return 1
    }
  }
  const method = values.request ?? (body !== undefined ? 'POST' : 'GET')
  if (!/^[A-Za-z]+$/.test(method)) throw new UsageError('-X takes an HTTP method')

  const signed: Record<string, string> =
    scheme === 'worker-v1'
      ? { ...signWorkerV1({ id: values.id as string, secret }) }
      : { ...signRfc9421({ keyId: values['key-id'] as string, secret, method, url, headers, body }) }

  if (!values.send) {
    for (const [name, value] of Object.entries(signed)) process.stdout.write(`${displayName(name)}: ${value}\n`)
    return 0
  }
  let dispatcher
  try {
    dispatcher = await dispatcherFor(values.cacert as string | undefined)
  } catch (err) {
    if (!(err instanceof CaFileError)) throw err
    process.stderr.write(`sign: ${err.message}\n`)
    return 1
  }
  try {
    return await send(url, method, [...headers, ...Object.entries(signed)], body, values.include === true, dispatcher)
  } finally {
    await dispatcher?.close()
  }
}

async function send(url: URL, method: string, headers: Array<[string, string]>, body: Buffer | undefined, include: boolean, dispatcher?: Dispatcher): Promise<number> {
  let res
  try {
    res = await request(url, { method, headers: headers.flat(), body, ...(dispatcher ? { dispatcher } : {}) })
  } catch (err) {
    process.stderr.write(`sign: ${describeSendFailure(err, url)}\n`)
    return 1
  }
  if (include) {
    process.stdout.write(`HTTP/1.1 ${res.statusCode}\n`)
    for (const [name, value] of Object.entries(res.headers)) {
      for (const v of Array.isArray(value) ? value : [value]) process.stdout.write(`${name}: ${v}\n`)
    }
    process.stdout.write('\n')
  }
  process.stdout.write(Buffer.from(await res.body.arrayBuffer()))
  const ok = res.statusCode >= 200 && res.statusCode < 300
  if (!ok) process.stderr.write(`sign: HTTP ${res.statusCode}\n`)
  return ok ? 0 : 1
}

function parseUrl(text: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new UsageError(`not a URL: ${text}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('URL must be http:// or https://')
  return url
}

function parseHeader(text: string): [string, string] {
  const at = text.indexOf(':')
  const name = at > 0 ? text.slice(0, at).trim() : ''
  if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) throw new UsageError(`-H takes 'Name: value', got ${JSON.stringify(text)}`)
  return [name, text.slice(at + 1).trim()]
}

/** `x-worker-id` → `X-Worker-Id`, as curl users type them. */
function displayName(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase())
}
