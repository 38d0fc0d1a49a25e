// Trusting a private CA, and telling a certificate failure apart from an unreachable gateway (DESIGN §1:
// "certificate verify failed: …", never "cannot reach"). Reads no file itself; prints nothing.
import { Agent } from 'undici'

/** OpenSSL / Node codes of a peer certificate that did not verify (chain, validity, or name). */
const VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
])

/** An undici dispatcher that verifies the server against these CA certificates (PEM) instead of the system's. */
export function trustingDispatcher(ca: string | Buffer): Agent {
  return new Agent({ connect: { ca } })
}

/** The error and its causes, outermost first (fetch wraps the socket's error as `cause`). */
function chain(err: unknown): Array<Error & { code?: string }> {
  const out: Array<Error & { code?: string }> = []
  for (let e = err; e instanceof Error && out.length < 8; e = (e as { cause?: unknown }).cause) out.push(e)
  return out
}

/** `certificate verify failed: <reason> (<code>)` when the failure is the peer's certificate, else undefined. */
export function certificateFailure(err: unknown): string | undefined {
  const hit = chain(err).find((e) => e.code !== undefined && VERIFY_CODES.has(e.code))
  return hit ? `certificate verify failed: ${hit.message} (${hit.code})` : undefined
}

/** What went wrong sending a request, for a CLI's stderr: the certificate failure, or the innermost cause. */
export function describeSendFailure(err: unknown, url: string | URL): string {
  const cert = certificateFailure(err)
  if (cert) return cert
  const inner = chain(err).at(-1)
  const reason = inner ? (inner.code ? `${inner.message} (${inner.code})` : inner.message) : String(err)
  return `cannot reach ${String(url)}: ${reason}`
}
