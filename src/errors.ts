// The one table of every reply portcullis makes itself: code, status, message.
// Nothing else in the code invents a status or an error text; docs/errors.md mirrors this table.

export const ERRORS = {
  BAD_PATH: { status: 400, message: 'Bad path' },
  BAD_REQUEST: { status: 400, message: 'Bad request' },
  REQUEST_TIMEOUT: { status: 408, message: 'Request timeout' },
  MISSING_CREDENTIALS: { status: 401, message: 'Missing credentials' },
  INVALID_CREDENTIALS: { status: 401, message: 'Invalid credentials' },
  INVALID_SIGNATURE: { status: 401, message: 'Invalid signature' },
  TIMESTAMP_SKEW: { status: 401, message: 'Timestamp expired or too far in future' },
  REPLAYED: { status: 401, message: 'Request replayed' },
  KEY_REVOKED: { status: 401, message: 'Key revoked' },
  DIGEST_MISMATCH: { status: 401, message: 'Content digest mismatch' },
  TOKEN_EXPIRED: { status: 401, message: 'Token expired' },
  AMBIGUOUS_CREDENTIALS: { status: 401, message: 'Ambiguous credentials' },
  FORBIDDEN: { status: 403, message: 'Forbidden' },
  NO_ROUTE: { status: 404, message: 'No route' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed' },
  BODY_TOO_LARGE: { status: 413, message: 'Body too large' },
  RATE_LIMITED: { status: 429, message: 'Rate limited' },
  INTERNAL: { status: 500, message: 'Internal error' },
  UPSTREAM_UNAVAILABLE: { status: 502, message: 'Upstream unavailable' },
  STATE_UNAVAILABLE: { status: 503, message: 'State store unavailable' },
  OVERLOADED: { status: 503, message: 'Overloaded' },
  UPSTREAM_TIMEOUT: { status: 504, message: 'Upstream timeout' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERRORS

/** A refusal decided on the request path; `message` overrides the table's text (e.g. `Invalid API key`). */
export interface Denial {
  code: ErrorCode
  message?: string
}

export function errorBody(code: ErrorCode, requestId: string, message?: string): string {
  return JSON.stringify({ error: message ?? ERRORS[code].message, code, requestId })
}
