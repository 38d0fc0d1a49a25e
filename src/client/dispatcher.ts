// An undici interceptor / dispatcher that signs every request it sends (worker-v1 or rfc9421).
// rfc9421 digests the body before the headers go out: a string, Buffer or Uint8Array is signed as is; a
// stream or async iterable (what fetch() always sends) is read into memory first; FormData is refused.
import { getGlobalDispatcher, type Dispatcher } from 'undici'
import { signRequestParts, type Rfc9421Credentials } from './rfc9421.js'
import { signWorkerV1, type WorkerV1SignOptions } from './worker-v1.js'

export type SigningOptions =
  | ({ scheme: 'worker-v1' } & Omit<WorkerV1SignOptions, 'now'>)
  | ({ scheme: 'rfc9421' } & Omit<Rfc9421Credentials, 'nonce' | 'created' | 'expires'> & { expiresIn?: number })

/** Headers this interceptor sets; any the caller passed under these names are replaced. */
const SIGNING_HEADERS = new Set(['x-worker-id', 'x-worker-timestamp', 'x-worker-signature', 'signature-input', 'signature', 'content-digest'])

/**
 * `Dispatcher.compose` interceptor. Each dispatch is signed afresh (new timestamp / nonce), so put it
 * inside a retry or redirect interceptor (`agent.compose(signingInterceptor(o), interceptors.retry())`)
 * and every attempt gets its own signature instead of a replay.
 */
export function signingInterceptor(options: SigningOptions): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) => {
    const body = opts.body as unknown
    if (options.scheme !== 'rfc9421' || !isAsyncIterable(body)) return dispatch({ ...opts, headers: signedHeaders(options, opts) }, handler)
    // The digest needs every byte before the first header is sent: read the stream, then sign and send.
    readAll(body).then(
      (bytes) => {
        let headers: string[]
        try {
          headers = signedHeaders(options, { ...opts, body: bytes })
        } catch (err) {
          return fail(handler, err)
        }
        dispatch({ ...opts, body: bytes, headers }, handler)
      },
      (err: unknown) => fail(handler, err),
    )
    return true
  }
}

function isAsyncIterable(body: unknown): body is AsyncIterable<unknown> {
  return body != null && typeof body === 'object' && !(body instanceof Uint8Array) && Symbol.asyncIterator in body
}

async function readAll(body: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) {
    if (typeof chunk === 'string') chunks.push(Buffer.from(chunk, 'utf8'))
    else if (chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    else throw new TypeError('rfc9421 signing: a streamed body must yield strings or bytes')
  }
  return Buffer.concat(chunks)
}

/** Reports a failure before anything was sent, through whichever handler interface the caller uses. */
function fail(handler: Dispatcher.DispatchHandler, err: unknown): void {
  const error = err instanceof Error ? err : new Error(String(err))
  const h = handler as { onResponseError?: (controller: unknown, err: Error) => void; onError?: (err: Error) => void }
  if (typeof h.onResponseError === 'function') h.onResponseError(null, error)
  else h.onError?.(error)
}

/** `base` (default: the global dispatcher) composed with the signing interceptor. */
export function createSigningDispatcher(options: SigningOptions, base: Dispatcher = getGlobalDispatcher()): Dispatcher {
  return base.compose(signingInterceptor(options))
}

function signedHeaders(options: SigningOptions, opts: Dispatcher.DispatchOptions): string[] {
  const pairs = dispatchHeaderPairs(opts.headers).filter(([k]) => !SIGNING_HEADERS.has(k.toLowerCase()))
  let added: Record<string, string>
  if (options.scheme === 'worker-v1') {
    added = { ...signWorkerV1({ id: options.id, secret: options.secret }) }
  } else {
    if (opts.query != null) throw new TypeError('rfc9421 signing: put the query in `path`, not `query`')
    const body = opts.body
    if (body != null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
      throw new TypeError('rfc9421 signing needs a string, Buffer or stream body; FormData and other body types are not supported')
    }
    if (opts.origin === undefined) throw new TypeError('rfc9421 signing needs the request origin')
    const origin = new URL(opts.origin)
    const at = opts.path.indexOf('?')
    const host = pairs.find(([k]) => k.toLowerCase() === 'host')?.[1]
    const created = Math.floor(Date.now() / 1000)
    added = {
      ...signRequestParts(
        { ...options, created, ...(options.expiresIn !== undefined ? { expires: created + options.expiresIn } : {}) },
        {
          method: opts.method,
          scheme: origin.protocol.slice(0, -1),
          authority: (host ?? origin.host).toLowerCase(),
          path: at === -1 ? opts.path : opts.path.slice(0, at),
          query: at === -1 ? '' : opts.path.slice(at),
          headers: pairs,
          body: body ?? undefined,
        },
      ),
    }
  }
  const flat: string[] = []
  for (const [k, v] of pairs) flat.push(k, v)
  for (const [k, v] of Object.entries(added)) flat.push(k, v)
  return flat
}

/** undici accepts headers as a record, a flat [k, v, k, v] array, or an iterable of [k, v]. */
function dispatchHeaderPairs(headers: Dispatcher.DispatchOptions['headers']): Array<[string, string]> {
  const pairs: Array<[string, string]> = []
  if (headers == null) return pairs
  if (Array.isArray(headers) && (headers.length === 0 || typeof headers[0] === 'string')) {
    for (let i = 0; i + 1 < headers.length; i += 2) pairs.push([String(headers[i]), String(headers[i + 1])])
    return pairs
  }
  const entries: Iterable<[string, unknown]> = Symbol.iterator in headers ? (headers as Iterable<[string, unknown]>) : Object.entries(headers)
  for (const [name, value] of entries) {
    if (value === undefined || value === null) continue
    for (const v of Array.isArray(value) ? value : [value]) pairs.push([name, String(v)])
  }
  return pairs
}
