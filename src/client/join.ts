// Worker side of DESIGN §4.7: trade the join PSK for this worker's own key. The request is signed
// per §4.4 with keyid `join`; the answer is unwrapped with a fresh X25519 key. Never logs a key.
import { fetch } from 'undici'
import { signRfc9421 } from './rfc9421.js'
import { generateX25519, unwrapWorkerKey, type WrappedJoinAnswer } from '../auth/join-wrap.js'

export const DEFAULT_JOIN_PATH = '/_portcullis/join'

export interface JoinOptions {
  /** The gateway's base URL (`http://gateway:8080`, or with a path prefix in front of the join path). */
  url: string | URL
  /** This worker's key id: the keyid it will sign with afterwards. */
  keyId: string
  /** The join PSK, used as its UTF-8 bytes. */
  psk: string
  /** The gateway's `join.path`; default `/_portcullis/join`. */
  path?: string
  /** Passed to undici's fetch as is (e.g. `trustingDispatcher(ca)` for a gateway a private CA signed). */
  dispatcher?: unknown
}

export class JoinError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message)
    this.name = 'JoinError'
  }
}

/** The URL a join request goes to: the base URL's path, then the join path. */
export function joinUrl(base: string | URL, path = DEFAULT_JOIN_PATH): URL {
  const u = new URL(base)
  u.pathname = u.pathname.replace(/\/+$/, '') + path
  u.search = ''
  u.hash = ''
  return u
}

/** The worker's key (64 hex characters), as `derive` makes it for `keyId` on the gateway. */
export async function joinGateway(options: JoinOptions): Promise<string> {
  const url = joinUrl(options.url, options.path)
  const { privateKey, publicKey } = generateX25519()
  const body = JSON.stringify({ keyid: options.keyId, publicKey })
  const headers = { 'content-type': 'application/json' }
  const signed = signRfc9421({ keyId: 'join', secret: options.psk, method: 'POST', url, body, headers })
  const init = { method: 'POST', headers: { ...headers, ...signed }, body, ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}) }
  const res = await fetch(url, init as Parameters<typeof fetch>[1])
  const text = await res.text()
  let answer: Record<string, unknown> = {}
  try {
    answer = JSON.parse(text) as Record<string, unknown>
  } catch {
    // reported below
  }
  if (res.status !== 200) {
    const code = typeof answer.code === 'string' ? answer.code : undefined
    const error = typeof answer.error === 'string' ? answer.error : res.statusText
    throw new JoinError(`join refused: ${res.status}${code ? ' ' + code : ''}: ${error}`, res.status, code)
  }
  if (typeof answer.wrappedKey !== 'string' || typeof answer.serverPublicKey !== 'string' || typeof answer.nonce !== 'string' || typeof answer.keyid !== 'string') {
    throw new JoinError('join answer is malformed', res.status)
  }
  let key: string
  try {
    key = unwrapWorkerKey(answer as unknown as WrappedJoinAnswer, options.keyId, privateKey)
  } catch (err) {
    throw new JoinError(`join answer cannot be unwrapped: ${(err as Error).message}`, res.status)
  }
  if (!/^[0-9a-f]{64}$/.test(key)) throw new JoinError('join answer holds no key', res.status)
  return key
}
