// Client side of DESIGN §4.3: the three x-worker-* headers for one request.
// Pure; never logs or returns the secret.
import { workerV1Signature } from '../auth/worker-v1.js'

export interface WorkerV1SignOptions {
  /** The worker id sent as x-worker-id; the gateway's identity becomes `worker:<id>`. */
  id: string
  /** The shared secret; a string is used as its UTF-8 bytes (a hex secret is not decoded). */
  secret: string | Uint8Array
  /** Unix milliseconds to sign; default Date.now(). */
  now?: number
}

/** A type (not an interface) so that it is assignable to fetch's `HeadersInit` as it is. */
export type WorkerV1Headers = {
  'x-worker-id': string
  'x-worker-timestamp': string
  'x-worker-signature': string
}

export function signWorkerV1(options: WorkerV1SignOptions): WorkerV1Headers {
  if (options.id === '') throw new TypeError('signWorkerV1: id is empty')
  const timestamp = String(Math.floor(options.now ?? Date.now()))
  const secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret
  return {
    'x-worker-id': options.id,
    'x-worker-timestamp': timestamp,
    'x-worker-signature': workerV1Signature(secret, options.id, timestamp),
  }
}
