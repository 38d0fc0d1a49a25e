// The process logger: JSON lines (pino) on stdout. Redaction paths cover credential headers in case
// a line ever carries request headers; audit lines themselves only carry fingerprints.
import { pino, type Logger } from 'pino'
import { REDACTED_HEADERS } from './audit.js'
import { createLineSink } from './line-sink.js'

/** `dest`: a file path for the log lines instead of stdout (the demo keeps its table readable). */
export function createLogger(level = process.env.PORTCULLIS_LOG_LEVEL ?? 'info', dest?: string): Logger {
  const sink = createLineSink(dest)
  // What is still waiting for the reader at exit is written then, within a bound (line-sink.ts).
  process.once('exit', () => sink.flushSync())
  return pino({
    level,
    base: { pid: process.pid },
    redact: { paths: REDACTED_HEADERS.flatMap((h) => [`headers["${h}"]`, `req.headers["${h}"]`]), censor: '[redacted]' },
  }, sink)
}
