// The fingerprints of the credentials a config names (bearer tokens, API keys, rfc9421 key ids), as audit
// lines and the last-used gauge show them — so that a credential removed from the config loses its series.
// Runs at load and reload, never per request; returns fingerprints only, never a resolved secret.
import type { GatewayConfigFile } from '../config/schema.js'
import { isStoredDigest, resolveSecret } from '../config/secrets.js'
import { keyFingerprint, tokenFingerprint } from '../auth/credential.js'

function tokenFp(ref: string): string | undefined {
  // A stored `sha256:<64 hex>` is the digest itself: its fingerprint is its first 6 hex.
  if (isStoredDigest(ref)) return 'token:' + ref.slice(7, 13).toLowerCase()
  const r = resolveSecret(ref)
  return r.ok ? tokenFingerprint(r.value) : undefined
}

export function configuredFingerprints(raw: Pick<GatewayConfigFile, 'identities' | 'schemes'>): Set<string> {
  const out = new Set<string>()
  for (const id of raw.identities ?? []) {
    for (const field of [id.bearer, id.apiKey]) {
      for (const ref of field === undefined ? [] : Array.isArray(field) ? field : [field]) {
        const fp = tokenFp(ref)
        if (fp) out.add(fp)
      }
    }
  }
  for (const scheme of Object.values(raw.schemes ?? {}) as Array<{ type?: string; keys?: Record<string, string> }>) {
    if (scheme.type === 'rfc9421') for (const keyid of Object.keys(scheme.keys ?? {})) out.add(keyFingerprint(keyid))
  }
  return out
}
