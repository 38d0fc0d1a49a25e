// The process logger: JSON lines (pino) on stdout. Redaction paths cover credential headers in case
// a line ever carries request headers; audit lines themselves only carry fingerprints.
import { pino, type Logger } from 'pino'
import { REDACTED_HEADERS } from './audit.js'

export function createLogger(level = process.env.PORTCULLIS_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    redact: { paths: REDACTED_HEADERS.flatMap((h) => [`headers["${h}"]`, `req.headers["${h}"]`]), censor: '[redacted]' },
  }, pino.destination({ dest: 1, sync: false }))
}
