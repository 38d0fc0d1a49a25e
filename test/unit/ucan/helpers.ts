// Test principals and chains for the UCAN tests: fresh Ed25519 / P-256 keys and a root → worker delegation.
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { didOf } from '../../../src/ucan/did-key.js'
import { delegate, invoke } from '../../../src/ucan/issue.js'

export interface Principal {
  key: KeyObject
  did: string
}

export function principal(kind: 'ed25519' | 'p256' = 'ed25519'): Principal {
  const { privateKey } = kind === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { key: privateKey, did: didOf(privateKey).did }
}

export const NOW = 1_800_000_000

/** root delegates `cmd` on itself to worker; worker invokes `invokeCmd` with args. Tokens: invocation first. */
export function chain(o: { root?: Principal; worker?: Principal; cmd?: string; invokeCmd?: string; args?: Record<string, unknown>; pol?: unknown[]; ttlS?: number; aud?: string } = {}) {
  const root = o.root ?? principal()
  const worker = o.worker ?? principal()
  const dlg = delegate({ key: root.key, aud: worker.did, sub: root.did, cmd: o.cmd ?? '/pool', pol: o.pol ?? [], ttlS: 3600, now: NOW })
  const tokens = invoke({ key: worker.key, sub: root.did, cmd: o.invokeCmd ?? '/pool/preload', args: o.args ?? {}, proofs: [], chain: [dlg], ttlS: o.ttlS ?? 60, now: NOW, ...(o.aud ? { aud: o.aud } : {}) })
  return { root, worker, dlg, tokens }
}
