// One UCAN token: the envelope `[signature, {h: varsig, "ucan/<tag>@1.0.0": payload}]` in canonical
// DAG-CBOR, its CID, its payload checked field by field (delegation or invocation, nothing else),
// and its signature. Decoding only ever throws UcanError; signing lives here too so both agree.
import { createHash, type KeyObject } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { base58btc } from 'multiformats/bases/base58'
import { CborError, decodeStrict, encode, isBytes, isMap } from './cbor.js'
import { isCommand } from './command.js'
import { didKeyAlgorithm, keyAlgorithm, parseDidKey, signRaw, verifyRaw, type KeyAlgorithm } from './did-key.js'
import { parsePolicy, PolicyError, type Policy } from './policy.js'

/** The fixture error names (UCAN reference vectors), plus the gateway's own. */
export type UcanErrorName =
  | 'Malformed'
  | 'InvalidSignature'
  | 'UnavailableProof'
  | 'InvalidClaim'
  | 'InvalidAudience'
  | 'InvalidSubject'
  | 'Expired'
  | 'TooEarly'
  | 'TooLong'
  | 'Revoked'
  | 'CommandMismatch'
  | 'MatchError'

export class UcanError extends Error {
  constructor(
    override readonly name: UcanErrorName,
    message: string,
  ) {
    super(message)
  }
}

export const DELEGATION_TAG = 'ucan/dlg@1.0.0'
export const INVOCATION_TAG = 'ucan/inv@1.0.0'
const DAG_CBOR = 0x71
const SHA2_256 = 0x12

/** Varsig v1 headers, whole: prefix 0x34, version 1, algorithm segments, then DAG-CBOR (0x71). */
const VARSIG: Record<KeyAlgorithm, Uint8Array> = {
  // EdDSA (0xed), curve Ed25519 (0xed), SHA2-512 (0x13)
  Ed25519: Uint8Array.from([0x34, 0x01, 0xed, 0x01, 0xed, 0x01, 0x13, 0x71]),
  // ECDSA (0xec), curve P-256 (0x1200), SHA2-256 (0x12)
  'P-256': Uint8Array.from([0x34, 0x01, 0xec, 0x01, 0x80, 0x24, 0x12, 0x71]),
}

export interface Delegation {
  kind: 'dlg'
  iss: string
  aud: string
  /** null = powerline */
  sub: string | null
  cmd: string
  pol: Policy
  nbf?: number
  exp: number | null
}

export interface Invocation {
  kind: 'inv'
  iss: string
  sub: string
  aud?: string
  cmd: string
  args: Record<string, unknown>
  prf: CID[]
  nbf?: number
  exp: number | null
  iat?: number
}

export interface Token<P = Delegation | Invocation> {
  cid: CID
  /** base32 `b…` form, the one revocation lists and replay keys use. */
  cidText: string
  bytes: Uint8Array
  payload: P
  /** The issuer's key algorithm (from its did:key); the key itself is imported only to verify. */
  algorithm: KeyAlgorithm
  signature: Uint8Array
  signed: Uint8Array
}

/** CIDv1, dag-cbor, sha2-256 of the token's bytes. */
export function tokenCid(bytes: Uint8Array): CID {
  const digest = createHash('sha256').update(bytes).digest()
  return CID.createV1(DAG_CBOR, Digest.create(SHA2_256, digest))
}

/** A CID as written in config or on the command line: base32 `b…` or base58btc `z…`; CIDv1 dag-cbor sha2-256 only. */
export function parseTokenCid(text: string): CID | undefined {
  try {
    const cid = text.startsWith('z') ? CID.parse(text, base58btc) : CID.parse(text)
    return isTokenCid(cid) ? cid : undefined
  } catch {
    return undefined
  }
}

function isTokenCid(cid: CID | null): cid is CID {
  return cid !== null && cid.version === 1 && cid.code === DAG_CBOR && cid.multihash.code === SHA2_256 && cid.multihash.size === 32
}

const malformed = (m: string) => new UcanError('Malformed', m)

/** Decode and check the shape of one token; the signature is NOT verified here (see verifyTokenSignature). */
export function decodeToken(bytes: Uint8Array): Token {
  let env: unknown
  try {
    env = decodeStrict(bytes)
  } catch (err) {
    if (err instanceof CborError) throw malformed(err.message)
    throw err
  }
  if (!Array.isArray(env) || env.length !== 2 || !isBytes(env[0]) || !isMap(env[1])) throw malformed('not a UCAN envelope')
  const signature = env[0]
  const sigPayload = env[1]
  const keys = Object.keys(sigPayload)
  if (keys.length !== 2 || !keys.includes('h')) throw malformed('the envelope holds h and one payload')
  const tag = keys.find((k) => k !== 'h')!
  const h = sigPayload.h
  const body = sigPayload[tag]
  if (!isBytes(h)) throw malformed('varsig header is not bytes')
  if (!isMap(body)) throw malformed('payload is not a map')
  let payload: Delegation | Invocation
  try {
    if (tag === DELEGATION_TAG) payload = delegationPayload(body)
    else if (tag === INVOCATION_TAG) payload = invocationPayload(body)
    else throw malformed('only ucan/dlg@1.0.0 and ucan/inv@1.0.0 are accepted')
  } catch (err) {
    if (err instanceof PolicyError) throw malformed(`pol: ${err.message}`)
    throw err
  }
  const algorithm = didKeyAlgorithm(payload.iss)
  if (!algorithm) throw malformed('iss is not an Ed25519 or P-256 did:key')
  if (!sameBytes(h, VARSIG[algorithm])) throw malformed(`varsig header does not name the issuer's ${algorithm} key`)
  const cid = tokenCid(bytes)
  return { cid, cidText: cid.toString(), bytes, payload, algorithm, signature, signed: encode(sigPayload) }
}

export function verifyTokenSignature(t: Token): boolean {
  const issuer = parseDidKey(t.payload.iss)
  return issuer !== undefined && issuer.algorithm === t.algorithm && verifyRaw(issuer, t.signed, t.signature)
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

const DLG_FIELDS = new Set(['iss', 'aud', 'sub', 'cmd', 'pol', 'nonce', 'meta', 'nbf', 'exp'])
const INV_FIELDS = new Set(['iss', 'sub', 'aud', 'cmd', 'args', 'prf', 'meta', 'nonce', 'exp', 'iat', 'cause'])
const MAX_CHAIN = 16

function checkFields(p: Record<string, unknown>, allowed: ReadonlySet<string>): void {
  for (const k of Object.keys(p)) if (!allowed.has(k)) throw malformed(`unknown payload field ${k}`)
}

function did(v: unknown, field: string): string {
  if (typeof v !== 'string' || !v.startsWith('did:') || v.length > 512) throw malformed(`${field} is not a DID`)
  return v
}

function time(v: unknown, field: string, nullable: boolean): number | null | undefined {
  if (v === undefined) return undefined
  if (v === null && nullable) return null
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw malformed(`${field} is not an integer timestamp`)
  return v
}

function common(p: Record<string, unknown>): { cmd: string; nbf?: number; exp: number | null } {
  if (!isCommand(p.cmd)) throw malformed('cmd is not a command')
  if (!isBytes(p.nonce)) throw malformed('nonce is not bytes')
  if (p.meta !== undefined && !isMap(p.meta)) throw malformed('meta is not a map')
  if (!Object.hasOwn(p, 'exp')) throw malformed('exp is required (null for none)')
  const exp = time(p.exp, 'exp', true) as number | null
  const nbf = time(p.nbf, 'nbf', false) as number | undefined
  return { cmd: p.cmd, exp, ...(nbf !== undefined ? { nbf } : {}) }
}

function delegationPayload(p: Record<string, unknown>): Delegation {
  checkFields(p, DLG_FIELDS)
  if (!Object.hasOwn(p, 'sub')) throw malformed('sub is required (null for a powerline)')
  return {
    kind: 'dlg',
    iss: did(p.iss, 'iss'),
    aud: did(p.aud, 'aud'),
    sub: p.sub === null ? null : did(p.sub, 'sub'),
    ...common(p),
    pol: parsePolicy(p.pol),
  }
}

function invocationPayload(p: Record<string, unknown>): Invocation {
  checkFields(p, INV_FIELDS)
  if (!isMap(p.args)) throw malformed('args is not a map')
  if (!Array.isArray(p.prf) || p.prf.length > MAX_CHAIN) throw malformed(`prf is not a list of at most ${MAX_CHAIN} CIDs`)
  const prf = p.prf.map((c) => {
    const cid = CID.asCID(c)
    if (!isTokenCid(cid)) throw malformed('prf holds something other than a CIDv1 dag-cbor sha2-256')
    return cid
  })
  if (p.cause !== undefined && CID.asCID(p.cause) === null) throw malformed('cause is not a CID')
  if (p.nbf !== undefined) throw malformed('an invocation has no nbf')
  const iat = time(p.iat, 'iat', false) as number | undefined
  return {
    kind: 'inv',
    iss: did(p.iss, 'iss'),
    sub: did(p.sub, 'sub'),
    ...(p.aud !== undefined ? { aud: did(p.aud, 'aud') } : {}),
    ...common(p),
    args: p.args,
    prf,
    ...(iat !== undefined ? { iat } : {}),
  }
}

/** Sign a payload as a token of `tag` with `key` (Ed25519 or P-256): the token's bytes. */
export function signToken(tag: typeof DELEGATION_TAG | typeof INVOCATION_TAG, payload: Record<string, unknown>, key: KeyObject): Uint8Array {
  const sigPayload = { h: VARSIG[keyAlgorithm(key)], [tag]: payload }
  const signature = signRaw(key, encode(sigPayload))
  return encode([signature, sigPayload])
}
