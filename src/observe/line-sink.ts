// The log destination behind pino: the lines of one turn of the event loop go out together in one
// write(2), made right then on the event loop's thread. sonic-boom's asynchronous mode, used before, sent
// each batch to libuv's thread pool: per batch a thread hand-off, a wake-up of the loop and a buffer joined
// off the heap, which under load cost more CPU than the write itself (docs/performance.md).
//
// It never blocks the gateway on its reader: on a pipe or socket the descriptor is non-blocking (Node makes
// stdout so once it is touched), and what the reader cannot take yet waits here and is tried again shortly
// (lines are kept, none is dropped, while the reader lives). At exit what is left is written within a
// bound, and dropped after it: a reader that is stuck or gone must not hang the exit after SIGTERM. A
// reader that is gone for good (EPIPE, EBADF) ends logging, as pino does; another failure (a full disk)
// drops that batch, says so on stderr, and goes on.
import fs from 'node:fs'
import { dirname } from 'node:path'

/** How long the exit-time flush may wait on a reader that is alive but not reading. */
export const EXIT_FLUSH_LIMIT_MS = 1000
/** At most this many characters of waiting lines go into one write. */
const BATCH_CHARS = 1 << 20
/** How soon a write the reader could not take is tried again. */
const RETRY_MS = 10

/** Errors that mean "not now": the same bytes are tried again later. */
function isBusy(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EBUSY' || code === 'EINTR'
}

/** Best effort, on stderr: the log itself is what failed. */
function notice(text: string): void {
  try {
    fs.writeSync(2, text)
  } catch {
    // nowhere left to say it
  }
}

export interface LineSink {
  write(line: string): boolean
  /** Calls back once everything written so far is out, logging has ended, or a busy reader was waited on for EXIT_FLUSH_LIMIT_MS. */
  flush(cb?: (err?: Error) => void): void
  /** Writes what is left, waiting on a busy reader at most `limitMs`; drops the rest after it. */
  flushSync(limitMs?: number): void
}

/**
 * A sink on `fd` (stdout when omitted) or on a file appended to (`dest`, its directory created).
 * `writeSync` is the write it uses (tests stand in for the descriptor).
 */
export function createLineSink(dest?: string, writeSync: (fd: number, b: Buffer) => number = fs.writeSync): LineSink {
  let fd = 1
  if (dest !== undefined) {
    fs.mkdirSync(dirname(dest), { recursive: true })
    fd = fs.openSync(dest, 'a')
  } else {
    // On a pipe or socket, Node's stdout stream sets the descriptor non-blocking: a full pipe answers
    // EAGAIN instead of stopping the event loop. (A file or a terminal is written as it is.)
    void process.stdout
  }
  return lineSinkOn(fd, writeSync)
}

export function lineSinkOn(fd: number, writeSync: (fd: number, b: Buffer) => number): LineSink {
  let pending: string[] = []
  /** Lines before `head` in `pending` are written already (a backlog is written batch by batch). */
  let head = 0
  /** Bytes of an earlier batch the reader has not taken yet: they go before `pending`. */
  let rest: Buffer | null = null
  let scheduled = false
  let ended = false
  let waiting: ((err?: Error) => void)[] = []

  let retry: NodeJS.Timeout | undefined
  /** The next attempt: at the end of this turn, or a little later for a busy reader. A retry keeps the
   * process alive only while someone waits on flush(). */
  const schedule = (ms: number) => {
    if (scheduled) {
      if (waiting.length > 0) retry?.ref()
      return
    }
    scheduled = true
    if (ms === 0) setImmediate(drain)
    else {
      retry = setTimeout(drain, ms)
      if (waiting.length === 0) retry.unref()
    }
  }

  /** One attempt: true once nothing is left (or logging ended). */
  /** The next batch of waiting lines, at most BATCH_CHARS (one turn's lines are far fewer). */
  const nextBatch = (): Buffer => {
    let stop = head
    let size = 0
    while (stop < pending.length && (stop === head || size + pending[stop]!.length <= BATCH_CHARS)) size += pending[stop++]!.length
    const batch = Buffer.from(stop - head === 1 ? pending[head]! : pending.slice(head, stop).join(''))
    if (stop === pending.length) {
      pending = []
      head = 0
    } else head = stop
    return batch
  }

  /**
   * One attempt: true once nothing is left (or logging ended). While the reader is busy only the bytes it
   * refused are tried again; the lines behind them wait as they are, so a long stall costs no copying.
   */
  const writeOut = (): boolean => {
    while (!ended) {
      if (rest === null) {
        if (head === pending.length) return true
        rest = nextBatch()
      }
      let n: number
      try {
        n = writeSync(fd, rest)
      } catch (err) {
        if (isBusy(err)) return false
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'EPIPE' || code === 'EBADF' || code === 'ECONNRESET') end() // the reader is gone for good
        else notice(`portcullis: writing log lines failed (${code ?? 'error'}); ${rest.length} bytes dropped\n`)
        rest = null
        continue
      }
      rest = n >= rest.length ? null : rest.subarray(n)
    }
    return true
  }

  const end = () => {
    ended = true
    pending = []
    head = 0
    rest = null
  }

  const settle = () => {
    const callbacks = waiting
    waiting = []
    for (const cb of callbacks) cb()
  }

  function drain(): void {
    scheduled = false
    retry = undefined
    if (writeOut()) settle()
    else schedule(RETRY_MS)
  }

  const sink: LineSink = {
    write(line) {
      if (ended) return true
      pending.push(line)
      schedule(0)
      return true
    },
    flush(cb) {
      if (writeOut()) {
        settle()
        cb?.()
      } else {
        schedule(RETRY_MS)
        if (!cb) return
        // Waits on a busy reader at most EXIT_FLUSH_LIMIT_MS: a stuck one must not hold up a shutdown
        // (what is left then is the exit-time flushSync's).
        let called = false
        const once = () => {
          if (called) return
          called = true
          clearTimeout(bound)
          cb()
        }
        const bound = setTimeout(() => {
          waiting = waiting.filter((w) => w !== once)
          once()
        }, EXIT_FLUSH_LIMIT_MS)
        waiting.push(once)
        retry?.ref()
      }
    },
    flushSync(limitMs = EXIT_FLUSH_LIMIT_MS) {
      const giveUpAt = Date.now() + limitMs
      const nap = new Int32Array(new SharedArrayBuffer(4))
      while (!writeOut()) {
        if (Date.now() >= giveUpAt) {
          end() // the reader is stuck: drop the rest rather than hang
          break
        }
        Atomics.wait(nap, 0, 0, RETRY_MS)
      }
      settle()
    },
  }
  return sink
}
