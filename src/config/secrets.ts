// Resolves `${env:NAME}` / `${file:/path}` references. Owns the 32-character minimum.
// Never puts a resolved value (or an inline literal) into an error message.
import { readFileSync } from 'node:fs'

export const MIN_SECRET_LENGTH = 32
const REF = /^\$\{(env|file):([^}]+)\}$/
const STORED_DIGEST = /^sha256:[0-9a-f]{64}$/

export type SecretResult = { ok: true; value: string } | { ok: false; message: string }

export function isReference(value: string): boolean {
  return REF.test(value)
}

/** A credential stored as its SHA-256 (`sha256:` + 64 hex), which is not a secret and may be inline. */
export function isStoredDigest(value: string): boolean {
  return STORED_DIGEST.test(value)
}

/** Resolve a reference without the length rule (used by `state.redis.url`, which may also be a literal). */
export function resolveReference(ref: string, env: NodeJS.ProcessEnv = process.env): SecretResult {
  const m = REF.exec(ref)
  if (!m) return { ok: false, message: 'inline secrets are not allowed; use ${env:NAME} or ${file:/path}' }
  const [, source, name] = m
  if (source === 'env') {
    const value = env[name!]
    if (value === undefined) return { ok: false, message: `secret reference \${env:${name}} does not resolve: environment variable ${name} is not set` }
    return { ok: true, value }
  }
  try {
    return { ok: true, value: readFileSync(name!, 'utf8').replace(/\r?\n$/, '') }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable'
    return { ok: false, message: `secret reference \${file:${name}} does not resolve (${code})` }
  }
}

/** Resolve a credential reference and apply the minimum length. */
export function resolveSecret(ref: string, env: NodeJS.ProcessEnv = process.env): SecretResult {
  const r = resolveReference(ref, env)
  if (!r.ok) return r
  if (r.value.length < MIN_SECRET_LENGTH) {
    return { ok: false, message: `secret is shorter than ${MIN_SECRET_LENGTH} characters` }
  }
  return r
}
