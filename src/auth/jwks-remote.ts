// DESIGN §4.6: a jwt scheme's key set fetched from a URL (undici), cached, re-fetched every `jwksCacheTtl`
// and on an unknown kid, never within 30 s of the previous fetch; a failed fetch keeps the last good set.
// Owns only fetching and caching; it never blocks a request on a fetch that the cool-down forbids, and
// never logs key material or the response body.
import { createHash } from 'node:crypto'
import { isIP } from 'node:net'
import { Agent, request, type Dispatcher } from 'undici'
import type { Authenticator } from './types.js'
import { jwksVerificationKeys, type JwtVerificationKey } from './jwks.js'

/** No two fetches of one key set closer than this (DESIGN §4.6), whatever asks: ttl, unknown kid, /readyz. */
export const COOLDOWN_MS = 30_000
const FETCH_TIMEOUT_MS = 5_000
/** A key set is a few keys; anything this large is not one. */
const MAX_BODY = 1 << 20

export interface KeySource {
  /** The keys to verify with now, or undefined while none was ever fetched. May start a background refresh. */
  current(now: number): readonly JwtVerificationKey[] | undefined
  /** A token names a kid the set lacks: re-fetch (unless within the cool-down) and return the set then. */
  refreshForUnknownKid(now: number): Promise<readonly JwtVerificationKey[] | undefined>
}

export class RemoteKeySet implements KeySource {
  private keys: readonly JwtVerificationKey[] | undefined
  private fetchedAt = -Infinity
  private attemptedAt = -Infinity
  private pending: Promise<void> | undefined

  constructor(
    private readonly url: URL,
    private readonly ttlMs: number,
    private readonly dispatcher: Dispatcher | undefined,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The fetch at start (serve and each reload call it; `check` and `mint` never do). */
  start(): void {
    void this.refresh(this.clock())
  }

  current(now: number): readonly JwtVerificationKey[] | undefined {
    if (this.keys === undefined || now - this.fetchedAt >= this.ttlMs) void this.refresh(now)
    return this.keys
  }

  async refreshForUnknownKid(now: number): Promise<readonly JwtVerificationKey[] | undefined> {
    await this.refresh(now)
    return this.keys
  }

  /** /readyz: not ready while no key set was ever fetched (and asking is a chance to try again). */
  notReady(): string | undefined {
    if (this.keys !== undefined) return undefined
    void this.refresh(this.clock())
    return 'Key set unavailable'
  }

  /** One fetch at a time; none within COOLDOWN_MS of the previous attempt. Never throws. */
  refresh(now: number): Promise<void> {
    if (this.pending) return this.pending
    if (now - this.attemptedAt < COOLDOWN_MS) return Promise.resolve()
    this.attemptedAt = now
    this.pending = this.fetchKeys()
      .then((keys) => {
        if (keys) {
          this.keys = keys
          this.fetchedAt = this.clock()
        }
      })
      .finally(() => (this.pending = undefined))
    return this.pending
  }

  /** The parsed key set, or undefined on any failure (network, status, size, JSON, key types). */
  private async fetchKeys(): Promise<JwtVerificationKey[] | undefined> {
    try {
      const res = await request(this.url, {
        method: 'GET',
        headers: { accept: 'application/jwk-set+json, application/json' },
        headersTimeout: FETCH_TIMEOUT_MS,
        bodyTimeout: FETCH_TIMEOUT_MS,
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
      })
      if (res.statusCode !== 200) {
        await res.body.dump()
        return undefined
      }
      const chunks: Buffer[] = []
      let size = 0
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length
        if (size > MAX_BODY) {
          res.body.destroy()
          return undefined
        }
        chunks.push(chunk as Buffer)
      }
      const parsed = jwksVerificationKeys(Buffer.concat(chunks).toString('utf8'))
      return parsed.ok ? parsed.keys : undefined
    } catch {
      return undefined
    }
  }
}

/** `https://…`, or `http://` to a loopback address only; a message otherwise. */
export function jwksUrlProblem(text: string): string | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'is not a URL'
  }
  if (url.username || url.password) return 'must not carry credentials'
  if (url.protocol === 'https:') return undefined
  if (url.protocol !== 'http:') return 'must be https:// (or http:// to a loopback address)'
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const loopback = host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
  return loopback ? undefined : 'http:// is allowed only to a loopback address (127.0.0.1, [::1], localhost); use https://'
}

export function isRemoteJwks(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(value)
}

/**
 * One key set per (url, ttl, CA) for the life of the process: a reload that keeps the URL keeps the set it
 * fetched, so a reload never opens a window of 503s or triggers a fetch of its own.
 */
const shared = new Map<string, RemoteKeySet>()

export function sharedRemoteKeySet(url: URL, ttlMs: number, ca: Buffer | undefined): RemoteKeySet {
  const id = `${url.href} ${ttlMs} ${ca ? createHash('sha256').update(ca).digest('hex') : '-'}`
  let set = shared.get(id)
  if (!set) {
    // Only the scheme's CA is trusted for a private-CA URL; no client certificate, no redirects (undici request follows none).
    const dispatcher = ca ? new Agent({ connect: { ca } }) : undefined
    set = new RemoteKeySet(url, ttlMs, dispatcher)
    shared.set(id, set)
  }
  return set
}

/** serve and every reload: the first fetch of each remote key set the config uses. */
export function startKeySets(gw: { authenticators: ReadonlyMap<string, Authenticator> }): void {
  for (const a of gw.authenticators.values()) a.start?.()
}

/** /readyz: the first reason a method of this config cannot serve requests, if any. */
export function keySetsNotReady(gw: { authenticators: ReadonlyMap<string, Authenticator> }): string | undefined {
  for (const a of gw.authenticators.values()) {
    const reason = a.notReady?.()
    if (reason !== undefined) return reason
  }
  return undefined
}
