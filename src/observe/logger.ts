// The process logger: JSON lines (pino) on stdout. Redaction paths cover credential headers in case
// a line ever carries request headers; audit lines themselves only carry fingerprints.
import { pino, type DestinationStream, type Logger } from 'pino'
import { REDACTED_HEADERS } from './audit.js'
import { boundExitFlush } from './exit-flush.js'

/**
 * sonic-boom (pino's destination) appends each line to a pending string and measures that string's byte
 * length on every write, which flattens it: under load every line copied the whole pending buffer (up to
 * 16 KB), the largest allocation per request (docs/performance.md). In buffer mode it keeps a list of
 * buffers instead, so each line is encoded once and joined once per write(2).
 */
function lineSink(boom: ReturnType<typeof pino.destination>): DestinationStream & { flush(cb?: (err?: Error) => void): void } {
  const buffers = boom as unknown as { write(b: Buffer): boolean }
  return {
    write: (line: string) => buffers.write(Buffer.from(line)),
    flush: (cb) => boom.flush(cb),
  }
}

/** `dest`: a file path for the log lines instead of stdout (the demo keeps its table readable). */
export function createLogger(level = process.env.PORTCULLIS_LOG_LEVEL ?? 'info', dest?: string): Logger {
  return pino({
    level,
    base: { pid: process.pid },
    redact: { paths: REDACTED_HEADERS.flatMap((h) => [`headers["${h}"]`, `req.headers["${h}"]`]), censor: '[redacted]' },
  }, lineSink(boundExitFlush(pino.destination({ dest: dest ?? 1, sync: false, contentMode: 'buffer', ...(dest ? { mkdir: true } : {}) }))))
}
