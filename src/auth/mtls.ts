// DESIGN §4.5: mutual TLS. A client certificate verified against server.tls.clientCa authenticates
// the identity whose `mtls.subject` or `mtls.san` names it. Only `socket.authorized` certificates
// count; the TLS layer requests but never requires one, so public routes work without. Never logs.
import type { X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import type { IncomingMessage } from 'node:http'
import { Type } from '@sinclair/typebox'
import { Strict } from '../config/schema-parts.js'
import type { ConfigPath } from '../config/types.js'
import { keyFingerprint } from './credential.js'
import { credentialOwner, type CredentialOwner as Owner } from './static-credentials.js'
import { handshakePeer, type HandshakePeer } from './tls-peer.js'
import { isTlsSocket, type AuthOutcome, type AuthRequest, type Authenticator, type Credential, type IdentityMethod } from './types.js'

/** How a configured identity is found: the full DN, the CN alone, or one SAN entry. */
export interface MtlsTable {
  byDn: ReadonlyMap<string, Owner>
  byCn: ReadonlyMap<string, Owner>
  /** `DNS:host`, `URI:spiffe://…`, `IP:10.0.0.1`, `email:a@b` → owner. */
  bySan: ReadonlyMap<string, Owner>
}

/**
 * A DN as RFC 4514 writes it and as `openssl x509 -noout -subject -nameopt RFC2253` prints it:
 * most specific RDN first, `,` between RDNs without spaces, attribute types upper-cased,
 * special characters in values backslash-escaped (`O=Acme\, Inc`). Spaces around `,` and `=`
 * in a configured subject are ignored.
 */
export function normalizeDn(dn: string): string {
  const rdns: string[] = []
  let current = ''
  for (let i = 0; i < dn.length; i++) {
    const c = dn[i]!
    if (c === '\\' && i + 1 < dn.length) {
      current += c + dn[++i]
      continue
    }
    if (c === ',') {
      rdns.push(current)
      current = ''
      continue
    }
    current += c
  }
  rdns.push(current)
  return rdns
    .map((rdn) => {
      const eq = rdn.indexOf('=')
      if (eq === -1) return rdn.trim()
      return rdn.slice(0, eq).trim().toUpperCase() + '=' + rdn.slice(eq + 1).trim()
    })
    .join(',')
}

/** Node's X509Certificate.subject is one RDN per line, least specific first; RFC 4514 is the reverse. */
export function certificateDn(cert: X509Certificate): string {
  return cert.subject.split('\n').filter(Boolean).reverse().join(',')
}

/** The most specific CN of a DN in normalized form, escaped as in the DN (`CN=` stripped). */
function commonName(dn: string): string | undefined {
  for (const rdn of splitRdns(dn)) if (rdn.startsWith('CN=')) return rdn.slice(3)
  return undefined
}

function splitRdns(dn: string): string[] {
  return dn.split(/(?<!\\),/)
}

/**
 * SAN entries of a certificate as `TYPE:value` with the types this method matches on:
 * `DNS`, `URI`, `IP` (Node writes `IP Address`), `email`. Node quotes values holding `,` or `"`.
 */
export function certificateSans(cert: X509Certificate): string[] {
  const text = cert.subjectAltName
  if (!text) return []
  const out: string[] = []
  const entry = /(DNS|URI|IP Address|email):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g
  for (let m = entry.exec(text); m !== null; m = entry.exec(text)) {
    let value = m[2]!
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string
      } catch {
        continue
      }
    }
    const key = sanKey(m[1] === 'IP Address' ? 'IP' : (m[1] as SanType), value)
    if (key !== undefined) out.push(key)
  }
  return out
}

type SanType = (typeof SAN_TYPES)[number]

/**
 * One spelling per SAN, so a configured entry and the certificate's meet in one Map lookup: DNS names
 * lower-cased without a trailing dot; IP addresses in their shortest form (Node prints IPv6 in full,
 * upper-case: `IP Address:2001:DB8:0:0:0:0:0:1`); an email's domain lower-cased; a URI (a SPIFFE ID) exact.
 * undefined when the value is not of its type (an `IP:` that is no address).
 */
export function sanKey(type: SanType, value: string): string | undefined {
  if (value === '') return undefined
  switch (type) {
    case 'DNS':
      return 'DNS:' + value.toLowerCase().replace(/\.$/, '')
    case 'IP': {
      const kind = isIP(value)
      if (kind === 0) return undefined
      // The WHATWG URL parser serializes an address canonically (RFC 5952 for IPv6).
      return 'IP:' + new URL(kind === 6 ? `http://[${value}]/` : `http://${value}/`).hostname.replace(/^\[|\]$/g, '')
    }
    case 'email': {
      const at = value.lastIndexOf('@')
      return at < 1 ? undefined : 'email:' + value.slice(0, at) + '@' + value.slice(at + 1).toLowerCase()
    }
    case 'URI':
      return 'URI:' + value
  }
}

const SAN_TYPES = ['DNS', 'URI', 'IP', 'email'] as const

/** The owner of a verified certificate: by full DN, then by CN, then by SAN entry. */
export function findOwner(table: MtlsTable, cert: X509Certificate): Owner | undefined {
  const dn = certificateDn(cert)
  const byDn = table.byDn.get(dn)
  if (byDn) return byDn
  const cn = commonName(dn)
  const byCn = cn === undefined ? undefined : table.byCn.get(cn)
  if (byCn) return byCn
  for (const san of certificateSans(cert)) {
    const owner = table.bySan.get(san)
    if (owner) return owner
  }
  return undefined
}

/** The certificate of the connection's own handshake, never one presented by a later renegotiation. */
function peerCertificate(req: IncomingMessage): HandshakePeer | undefined {
  if (!isTlsSocket(req)) return undefined
  return handshakePeer(req.socket)
}

/** A client certificate: in no header, so it is never stripped and never makes a request ambiguous. */
const MTLS_CREDENTIAL: Credential = {
  kind: 'mtls',
  headers: [],
  present: (req) => peerCertificate(req) !== undefined,
}

export function createMtlsAuthenticator(table: MtlsTable): Authenticator {
  return {
    name: 'mtls',
    kind: MTLS_CREDENTIAL.kind,
    local: true,
    credentialHeaders: MTLS_CREDENTIAL.headers,
    challenge: 'ClientCertificate realm="portcullis"',
    missingMessage: 'Missing client certificate',
    present: (req) => peerCertificate(req) !== undefined,
    authenticate(req: AuthRequest): AuthOutcome {
      const peer = peerCertificate(req.raw)
      if (!peer) return { kind: 'absent' }
      const fp = keyFingerprint(peer.cert.fingerprint256)
      // rejectUnauthorized is off (public routes need no certificate): the chain check is ours to read.
      if (!peer.authorized) return { kind: 'deny', code: 'INVALID_CREDENTIALS', message: 'Invalid client certificate', fp }
      const owner = findOwner(table, peer.cert)
      if (!owner) return { kind: 'deny', code: 'INVALID_CREDENTIALS', message: 'Invalid client certificate', fp }
      return { kind: 'identity', identity: { name: owner.name, roles: owner.roles, method: 'mtls', fp, ...(owner.claims ? { claims: owner.claims } : {}) } }
    },
  }
}

/** `DNS:x` / `URI:x` / `IP:x` / `email:x` as written, or a bare value matching a DNS, URI or IP entry; [] if invalid. */
function sanKeys(san: string): string[] {
  const m = /^(DNS|URI|IP|email):(.+)$/i.exec(san)
  if (m) {
    const type = SAN_TYPES.find((t) => t.toLowerCase() === m[1]!.toLowerCase())!
    if (type === 'URI' && !URL.canParse(m[2]!)) return []
    const key = sanKey(type, m[2]!)
    return key === undefined ? [] : [key]
  }
  return (['DNS', 'URI', 'IP'] as const).map((t) => sanKey(t, san)).filter((k): k is string => k !== undefined)
}

const fields = {
  mtls: Type.Optional(Type.Object({ subject: Type.Optional(Type.String({ minLength: 1 })), san: Type.Optional(Type.String({ minLength: 1 })) }, Strict)),
}

/** `identities[].mtls`: the subject DN, or a SAN, of a certificate signed by server.tls.clientCa. */
export const mtls: IdentityMethod<typeof fields> = {
  name: 'mtls',
  fields,
  unused: 'no identity has an mtls subject/san',
  credential: MTLS_CREDENTIAL,
  compile(all, ctx, facts) {
    const identities = all.map((id, i) => [id, i] as const).filter(([id]) => id.mtls !== undefined)
    if (identities.length === 0) return undefined
    if (!facts.clientCa) {
      const [, first] = identities[0]!
      // Still compiled below, so routes naming `mtls` report only this error, not a cascade.
      ctx.error(['identities', first, 'mtls'], 'an mtls identity needs server.tls.clientCa (the CA that signs client certificates)')
    }
    const byDn = new Map<string, Owner>()
    const byCn = new Map<string, Owner>()
    const bySan = new Map<string, Owner>()
    const claim = (map: Map<string, Owner>, key: string, owner: Owner, path: ConfigPath, what: string) => {
      const other = map.get(key)
      if (other && other.name !== owner.name) ctx.error(path, `this ${what} is already given to identity "${other.name}"`)
      else map.set(key, owner)
    }
    for (const [id, i] of identities) {
      const at: ConfigPath = ['identities', i, 'mtls']
      const { subject, san } = id.mtls!
      if (subject === undefined && san === undefined) {
        ctx.error(at, 'mtls needs a subject (e.g. "CN=ci-runner") or a san (e.g. "DNS:ci.example.com")')
        continue
      }
      const owner = credentialOwner(id)
      if (subject !== undefined) {
        const dn = normalizeDn(subject)
        if (!/^[A-Z0-9.]+=/.test(dn)) ctx.error([...at, 'subject'], 'must be a DN such as "CN=ci-runner" or "CN=ci-runner,O=Acme"')
        const rdns = splitRdns(dn)
        if (rdns.length === 1 && rdns[0]!.startsWith('CN=')) claim(byCn, rdns[0]!.slice(3), owner, [...at, 'subject'], 'subject')
        else claim(byDn, dn, owner, [...at, 'subject'], 'subject')
      }
      if (san !== undefined) {
        const keys = sanKeys(san)
        if (keys.length === 0) ctx.error([...at, 'san'], 'must be DNS:name, IP:address, URI:uri (e.g. a SPIFFE ID) or email:address')
        for (const key of keys) claim(bySan, key, owner, [...at, 'san'], 'san')
      }
    }
    return createMtlsAuthenticator({ byDn, byCn, bySan })
  },
}
