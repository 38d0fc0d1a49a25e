// Bounds the last, synchronous flush of the log destination at process exit. sonic-boom's flushSync
// retries a failed write forever — EPIPE included, EAGAIN for as long as the reader does not read — so a
// stdout nobody reads any more (a crashed log shipper, `portcullis serve | head`) would hang the exit
// after SIGTERM. Lines that cannot be written then are dropped: their reader is gone.
import fs from 'node:fs'

/** How long the exit-time flush may wait on a reader that is alive but not reading. */
const EXIT_FLUSH_LIMIT_MS = 1000

type WriteSync = (fd: number, buffer: string | NodeJS.ArrayBufferView, ...rest: never[]) => number

function byteLength(buffer: string | NodeJS.ArrayBufferView): number {
  return typeof buffer === 'string' ? Buffer.byteLength(buffer) : buffer.byteLength
}

export function boundExitFlush<T extends { flushSync(): void }>(destination: T): T {
  const flushSync = destination.flushSync.bind(destination)
  destination.flushSync = () => {
    const writeSync = fs.writeSync as WriteSync
    const giveUpAt = Date.now() + EXIT_FLUSH_LIMIT_MS
    // Only for the duration of this call, on the only thread running: sonic-boom looks fs.writeSync up per write.
    ;(fs as { writeSync: WriteSync }).writeSync = (fd, buffer, ...rest) => {
      try {
        return writeSync(fd, buffer, ...rest)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if ((code === 'EAGAIN' || code === 'EBUSY') && Date.now() < giveUpAt) throw err // sonic-boom waits and retries
        return byteLength(buffer) // the reader is gone (or stuck): drop the rest rather than hang
      }
    }
    try {
      flushSync()
    } finally {
      ;(fs as { writeSync: WriteSync }).writeSync = writeSync
    }
  }
  return destination
}
