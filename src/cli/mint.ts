// `portcullis mint --scheme NAME --sub ID [--roles a,b] [--ttl 10m] [--key FILE] [--claim k=v]... [--cnf-cert FILE] [--config PATH]`:
// a JWT for a `type: jwt` scheme of the config (DESIGN §4.6). Prints only the token, never the key.
import { randomUUID, createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { SignJWT } from 'jose'
import { JWT_ROLE, JWT_SUBJECT, certificateThumbprint, type JwtSchemeFile } from '../auth/jwt.js'
import { jwksVerificationKeys } from '../auth/jwks.js'
import { isRemoteJwks } from '../auth/jwks-remote.js'
import { formatFinding, loadConfigFile } from '../config/load.js'
import { resolveSecret } from '../config/secrets.js'
import { durationMs } from '../config/types.js'
import { configPathFrom, parse, UsageError } from './args.js'

const USAGE = 'usage: portcullis mint --scheme NAME --sub ID [--roles a,b] [--ttl 10m] [--key FILE] [--claim k=v]... [--cnf-cert FILE] [--config PATH]'
const DEFAULT_TTL_MS = 10 * 60_000

function fail(message: string): number {
  process.stderr.write(`mint: ${message}\n`)
  return 1
}

/** The signing key and algorithm for a jwks scheme: the PEM private key, which must be one the JWKS lists. */
async function privateSigningKey(keyFile: string, jwksFile: string): Promise<{ key: KeyObject; alg: string; kid?: string } | string> {
  let key: KeyObject
  try {
    key = createPrivateKey(await readFile(keyFile))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code ? `cannot read ${keyFile} (${code})` : `${keyFile} is not a PEM private key`
  }
  const type = key.asymmetricKeyType
  const alg = type === 'ed25519' ? 'EdDSA' : type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? 'ES256' : undefined
  if (!alg) return `${keyFile} must be an Ed25519 (EdDSA) or P-256 (ES256) private key`
  let jwks: Buffer
  try {
    jwks = await readFile(jwksFile)
  } catch (err) {
    return `cannot read ${jwksFile} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`
  }
  const parsed = jwksVerificationKeys(jwks.toString('utf8'))
  if (!parsed.ok) return `${jwksFile} ${parsed.message}`
  const pub = createPublicKey(key)
  const match = parsed.keys.find((k) => k.key.equals(pub))
  if (!match) return `the key in ${keyFile} is not in the scheme's jwks ${jwksFile}: the gateway would refuse its tokens`
  return { key, alg, ...(match.kid !== undefined ? { kid: match.kid } : {}) }
}

/** RFC 8705 `x5t#S256` of a PEM certificate file, or `!` + a message (never the file's content). */
async function certificateFile(file: string): Promise<string> {
  let pem: Buffer
  try {
    pem = await readFile(file)
  } catch (err) {
    return `!cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`
  }
  try {
    return certificateThumbprint(new X509Certificate(pem))
  } catch {
    return `!${file} is not a PEM certificate`
  }
}

/** Registered claims mint sets itself; `--claim` may not replace them. */
const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'cnf'])

/** `--claim k=v`: v as JSON when it parses (true, 2, ["a"]), else the string. */
export function parseClaims(list: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  for (const item of list) {
    const eq = item.indexOf('=')
    if (eq < 1) throw new UsageError('--claim takes NAME=VALUE')
    const name = item.slice(0, eq)
    if (RESERVED.has(name)) throw new UsageError(`--claim cannot set "${name}": mint sets it`)
    const text = item.slice(eq + 1)
    let value: unknown = text
    try {
      value = JSON.parse(text)
    } catch {
      // not JSON: the string itself
    }
    out[name] = value
  }
  return { ...out }
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    scheme: { type: 'string' },
    sub: { type: 'string' },
    roles: { type: 'string' },
    ttl: { type: 'string' },
    key: { type: 'string' },
    claim: { type: 'string', multiple: true },
    'cnf-cert': { type: 'string' },
    config: { type: 'string' },
  })
  const name = values.scheme as string | undefined
  const sub = values.sub as string | undefined
  if (name === undefined || sub === undefined) throw new UsageError(USAGE)
  if (!JWT_SUBJECT.test(sub)) throw new UsageError('--sub must be printable ASCII (spaces only inside), at most 256 characters')
  const roles = values.roles === undefined ? undefined : (values.roles as string).split(',').map((r) => r.trim()).filter(Boolean)
  if (roles && !roles.every((r) => JWT_ROLE.test(r))) throw new UsageError('--roles takes a comma-separated list of printable roles')
  if (values.ttl !== undefined && !/^[0-9]+(ms|s|m|h|d)?$/.test(values.ttl)) throw new UsageError('--ttl takes a duration such as 90s, 10m, 1h')

  const claims = parseClaims((values.claim as string[] | undefined) ?? [])
  const cnfCert = values['cnf-cert'] as string | undefined

  const file = configPathFrom(values.config)
  const loaded = await loadConfigFile(file)
  if (!loaded.ok) {
    for (const f of loaded.errors) process.stderr.write(formatFinding(f) + '\n')
    return 1
  }
  const spec = loaded.gateway.raw.schemes?.[name] as JwtSchemeFile | { type: string } | undefined
  if (!spec) return fail(`no scheme "${name}" in ${file}`)
  if (spec.type !== 'jwt') return fail(`scheme "${name}" is type ${spec.type}, not jwt`)
  const jwt = spec as JwtSchemeFile

  const maxTtlMs = durationMs(jwt.maxTtl)
  const ttlMs = values.ttl === undefined ? Math.min(DEFAULT_TTL_MS, maxTtlMs) : durationMs(/[a-z]$/.test(values.ttl) ? values.ttl : Number(values.ttl))
  if (ttlMs < 1000) throw new UsageError('--ttl must be at least 1s')
  if (ttlMs > maxTtlMs) return fail(`--ttl ${values.ttl} is longer than the scheme's maxTtl (${jwt.maxTtl}): the gateway would refuse the token`)

  let key: KeyObject | Uint8Array
  let alg: string
  let kid: string | undefined
  if (jwt.secret !== undefined) {
    if (values.key !== undefined) throw new UsageError(`scheme "${name}" signs with its secret (HS256); --key is for jwks schemes`)
    const secret = resolveSecret(jwt.secret)
    if (!secret.ok) return fail(`schemes.${name}.secret: ${secret.message}`)
    key = Buffer.from(secret.value, 'utf8')
    alg = 'HS256'
  } else {
    // A key set at a URL belongs to an issuer elsewhere: its tokens come from that issuer.
    if (isRemoteJwks(jwt.jwks!)) return fail(`scheme "${name}" takes its keys from ${jwt.jwks}: tokens for it come from that issuer, not from mint`)
    if (values.key === undefined) throw new UsageError(`scheme "${name}" verifies with a jwks: pass the private key with --key FILE (PEM)`)
    const signing = await privateSigningKey(values.key as string, jwt.jwks!)
    if (typeof signing === 'string') return fail(signing)
    ;({ key, alg, kid } = signing)
  }

  let cnf: { 'x5t#S256': string } | undefined
  if (cnfCert !== undefined) {
    const thumbprint = await certificateFile(cnfCert)
    if (thumbprint.startsWith('!')) return fail(thumbprint.slice(1))
    cnf = { 'x5t#S256': thumbprint }
  }

  const iat = Math.floor(Date.now() / 1000)
  let builder = new SignJWT({ ...claims, ...(roles ? { [jwt.rolesClaim]: roles } : {}), ...(cnf ? { cnf } : {}) })
    .setProtectedHeader({ alg, typ: 'JWT', ...(kid !== undefined ? { kid } : {}) })
    .setSubject(sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.floor(ttlMs / 1000))
    .setJti(randomUUID())
  if (jwt.issuer !== undefined) builder = builder.setIssuer(jwt.issuer)
  if (jwt.audience !== undefined) builder = builder.setAudience(jwt.audience)
  process.stdout.write((await builder.sign(key)) + '\n')
  return 0
}
