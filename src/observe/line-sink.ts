// The log destination behind pino: the lines of one turn of the event loop go out together in one
// write(2), made right then on the event loop's thread (to a regular file: through the thread pool, below).
// sonic-boom's asynchronous mode, used before, sent every batch to libuv's thread pool: per batch a thread
// hand-off, a wake-up of the loop and a buffer joined off the heap, which under load cost more CPU than the
// write itself (docs/performance.md).
//
// It never blocks the gateway on its reader. On a pipe or a terminal it writes through a descriptor of its
// own, opened non-blocking (fd 1 itself, and whoever else writes to the same pipe, keep their mode); on a
// socket Node's stdout stream makes the descriptor non-blocking. A regular file cannot be made so (a write
// to slow storage, or one the kernel throttles for dirty pages, waits whatever the mode): there one batch
// at a time goes to libuv's thread pool, and the lines of the turns it takes wait for the next batch.
// What the reader cannot take yet waits here and is offered again, sooner while the reader makes progress,
// later (up to 200 ms) while it does not; no line is dropped while the reader lives. A flush — at shutdown,
// and at exit — waits for the lines written before it as long as the reader keeps taking bytes, and gives
// up after a second without progress (10 s in all at exit): a reader that is stuck or gone must not hang
// the exit after SIGTERM. A reader that is gone for good (EPIPE, EBADF) ends logging, as pino does;
// another failure (a full disk) drops that batch and says so on stderr, at most once every 5 s with a count.
import fs from 'node:fs'
import { dirname } from 'node:path'

/** A flush gives up on a reader that took nothing for this long. */
const STALL_LIMIT_MS = 1000
/** The exit-time flush gives up after this long in all, even on a reader that still makes progress. */
const EXIT_FLUSH_CAP_MS = 10_000
/** At most this many characters of waiting lines go into one write. */
const BATCH_CHARS = 1 << 20
/** How soon a write the reader could not take is tried again: doubled while it takes nothing, to this. */
const RETRY_MIN_MS = 10
const RETRY_MAX_MS = 200
/** Failed writes are reported on stderr at most this often. */
const NOTICE_EVERY_MS = 5000

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

/** A write made off the event loop's thread (fs.write): `done` gets the bytes written or the error. */
export type WriteLater = (fd: number, b: Buffer, done: (err: NodeJS.ErrnoException | null, written: number) => void) => void

const writeLater: WriteLater = (fd, b, done) => fs.write(fd, b, 0, b.length, null, (err, n) => done(err, n))

export interface LineSink {
  write(line: string): boolean
  /** Calls back once everything written so far is out, logging has ended, or the reader took nothing for STALL_LIMIT_MS. */
  flush(cb?: (err?: Error) => void): void
  /** Writes what is left while the reader takes it; drops the rest after `stallMs` without progress or `capMs` in all. */
  flushSync(stallMs?: number, capMs?: number): void
}

/**
 * The descriptor to write stdout's lines to. A pipe or a terminal is opened anew, non-blocking, through
 * /proc: a file description of the sink's own, so the mode of fd 1 — shared with any other process writing
 * to the same pipe — is left alone. A socket cannot be opened so: Node's stdout stream makes it
 * non-blocking. A file (whose offset must stay shared) and anything else are written through fd 1.
 */
function stdoutDescriptor(): { fd: number; file: boolean } {
  let stat: fs.Stats
  try {
    stat = fs.fstatSync(1)
  } catch {
    return { fd: 1, file: false }
  }
  if (stat.isFIFO() || stat.isCharacterDevice()) {
    try {
      return { fd: fs.openSync('/proc/self/fd/1', fs.constants.O_WRONLY | fs.constants.O_NONBLOCK), file: false }
    } catch {
      // no /proc: the stream's way, below
    }
  }
  if (stat.isSocket() || stat.isFIFO()) void process.stdout
  return { fd: 1, file: stat.isFile() }
}

/**
 * A sink on stdout, or on a file appended to (`dest`, its directory created). A regular file (`dest`, or
 * stdout redirected to one) is written off the loop's thread, everything else on it.
 * `writeSync` is the write it uses on the loop's thread, and at exit (tests stand in for the descriptor).
 */
export function createLineSink(dest?: string, writeSync: (fd: number, b: Buffer) => number = fs.writeSync): LineSink {
  if (dest === undefined) {
    const out = stdoutDescriptor()
    return lineSinkOn(out.fd, writeSync, out.file ? writeLater : undefined)
  }
  fs.mkdirSync(dirname(dest), { recursive: true })
  return lineSinkOn(fs.openSync(dest, 'a'), writeSync, writeLater)
}

/** `later`: batches go out through it, one at a time, instead of `writeSync` (which the exit flush still uses). */
export function lineSinkOn(fd: number, writeSync: (fd: number, b: Buffer) => number, later?: WriteLater): LineSink {
  let pending: string[] = []
  /** Lines before `head` in `pending` are written already (a backlog is written batch by batch). */
  let head = 0
  /** Bytes of an earlier batch the reader has not taken yet: they go before `pending`. */
  let rest: Buffer | null = null
  let scheduled = false
  let ended = false
  let retry: NodeJS.Timeout | undefined
  let retryMs = RETRY_MIN_MS
  /** When the reader last took a byte (or the sink last had nothing waiting). */
  let progressAt = Date.now()
  /** Flushes waiting: each for the lines written before it (`target`, a count of lines). */
  let waiting: { target: number; cb: () => void }[] = []
  let dropped = 0
  let noticedAt = 0
  /** Lines written to the sink so far; lines whose bytes are all out (or dropped); the line index of pending[0]. */
  let total = 0
  let done = 0
  let base = 0
  /** The line index just past the lines whose bytes are in `rest`. */
  let restEnd = 0
  /** A batch is with `later`: no other is sent until it comes back. */
  let inFlight = false
  /** Bumped by flushSync, which leaves a batch that is out to `later`: that batch's answer is then only its end. */
  let generation = 0
  let stallTimer: NodeJS.Timeout | undefined

  const hasWaiting = () => rest !== null || head < pending.length

  /** The next batch of waiting lines, at most BATCH_CHARS (one turn's lines are far fewer). */
  const nextBatch = (): Buffer => {
    let stop = head
    let size = 0
    while (stop < pending.length && (stop === head || size + pending[stop]!.length <= BATCH_CHARS)) size += pending[stop++]!.length
    const batch = Buffer.from(stop - head === 1 ? pending[head]! : pending.slice(head, stop).join(''))
    restEnd = base + stop
    if (stop === pending.length) {
      base += pending.length
      pending = []
      head = 0
    } else {
      head = stop
      // Written lines are let go of as the backlog shrinks, not only once it is gone.
      if (head > 1024 && head * 2 > pending.length) {
        base += head
        pending = pending.slice(head)
        head = 0
      }
    }
    return batch
  }

  const failed = (code: string | undefined, bytes: number) => {
    dropped += bytes
    const now = Date.now()
    if (now - noticedAt < NOTICE_EVERY_MS) return
    noticedAt = now
    notice(`portcullis: writing log lines failed (${code ?? 'error'}); ${dropped} bytes dropped\n`)
    dropped = 0
  }

  /**
   * One attempt: true once nothing is left (or logging ended). While the reader is busy only the bytes it
   * refused are offered again; the lines behind them wait as they are, so a long stall costs no copying.
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
        else failed(code, rest.length)
        rest = null
        done = Math.max(done, restEnd)
        continue
      }
      if (n <= 0) return false // took nothing: as busy
      progressAt = Date.now()
      if (n >= rest.length) {
        rest = null
        done = Math.max(done, restEnd)
      } else rest = rest.subarray(n)
    }
    return true
  }

  const end = () => {
    ended = true
    pending = []
    head = 0
    rest = null
    done = total
  }

  /** Every waiting flush is called back (all out, logging ended, or the reader stalled). */
  const settle = () => {
    clearTimeout(stallTimer)
    stallTimer = undefined
    const callbacks = waiting
    waiting = []
    for (const w of callbacks) w.cb()
  }

  /** The flushes whose lines are all out are called back; the others wait on. */
  const release = () => {
    if (waiting.every((w) => w.target > done)) return
    const ready = waiting.filter((w) => w.target <= done)
    waiting = waiting.filter((w) => w.target > done)
    if (waiting.length === 0) {
      clearTimeout(stallTimer)
      stallTimer = undefined
    }
    for (const w of ready) w.cb()
  }

  /** The next attempt: at the end of this turn, or later for a busy reader (ref'd while a flush waits). */
  const schedule = (ms: number) => {
    if (scheduled) return
    scheduled = true
    if (ms === 0) setImmediate(drain)
    else {
      retry = setTimeout(drain, ms)
      if (waiting.length === 0) retry.unref()
    }
  }

  function drain(): void {
    scheduled = false
    retry = undefined
    if (later) return void sendLater()
    const before = progressAt
    if (writeOut()) {
      retryMs = RETRY_MIN_MS
      return settle()
    }
    release() // the flushes whose lines are out, though later lines still wait
    retryMs = progressAt !== before ? RETRY_MIN_MS : Math.min(RETRY_MAX_MS, retryMs * 2)
    // A flush waiting on a reader that took nothing for STALL_LIMIT_MS is let go (the lines still wait).
    if (waiting.length > 0 && Date.now() - progressAt >= STALL_LIMIT_MS) settle()
    schedule(waiting.length > 0 ? RETRY_MIN_MS : retryMs)
  }

  /** The next batch to `later`, unless one is with it already (its answer sends the next). */
  function sendLater(): void {
    if (inFlight || ended) return
    if (rest === null) {
      if (head === pending.length) return release()
      rest = nextBatch()
    }
    const batch = rest
    const batchEnd = restEnd
    const mine = generation
    inFlight = true
    later!(fd, batch, (err, n) => {
      inFlight = false
      if (mine !== generation) {
        // A batch flushSync left out (pino's fatal() flushes so, then goes on): its lines are done with,
        // whatever became of them; a failure is still said.
        if (err || n < batch.length) failed(err ? err.code : 'short write', err ? batch.length : batch.length - Math.max(0, n))
        done = Math.max(done, batchEnd)
        release()
        if (!ended && hasWaiting()) schedule(0)
        return
      }
      if (err && !isBusy(err)) {
        if (err.code === 'EPIPE' || err.code === 'EBADF' || err.code === 'ECONNRESET') end()
        else failed(err.code, batch.length)
        rest = null
        done = Math.max(done, batchEnd)
      } else if (err || n <= 0) {
        retryMs = Math.min(RETRY_MAX_MS, retryMs * 2)
        return schedule(retryMs)
      } else {
        progressAt = Date.now()
        retryMs = RETRY_MIN_MS
        if (n >= batch.length) {
          rest = null
          done = Math.max(done, batchEnd)
        } else rest = batch.subarray(n)
      }
      if (ended) return settle()
      release()
      if (hasWaiting()) schedule(0)
    })
  }

  /** A flush waiting on a write that does not come back (hung storage) is let go after STALL_LIMIT_MS without progress. */
  function watchStall(): void {
    if (stallTimer !== undefined) return
    stallTimer = setTimeout(() => {
      stallTimer = undefined
      if (waiting.length === 0) return
      if (Date.now() - progressAt >= STALL_LIMIT_MS) settle()
      else watchStall()
    }, STALL_LIMIT_MS)
  }

  return {
    write(line) {
      if (ended) return true
      if (!hasWaiting() && !inFlight) progressAt = Date.now()
      pending.push(line)
      total++
      // Behind a busy reader (`rest` waiting) the line waits for the retry already set; behind a batch
      // with `later`, for its answer.
      if (!inFlight) schedule(rest === null ? 0 : retryMs)
      return true
    },
    flush(cb) {
      if (later) {
        // Waits for the lines written so far, not for lines written after it (logging may never pause).
        if (done >= total) {
          cb?.()
          return
        }
        if (cb) waiting.push({ target: total, cb: () => cb() })
        if (!inFlight && !scheduled) schedule(0)
        return watchStall()
      }
      if (writeOut()) {
        settle()
        cb?.()
        return
      }
      if (cb) waiting.push({ target: total, cb: () => cb() })
      if (scheduled) retry?.ref()
      else schedule(RETRY_MIN_MS)
    },
    flushSync(stallMs = STALL_LIMIT_MS, capMs = EXIT_FLUSH_CAP_MS) {
      // A batch with `later` is its to finish (offered again here, it could be written twice); only what
      // came after it is written now. Until its answer comes, no other batch goes to `later`.
      generation++
      if (inFlight) rest = null
      const started = Date.now()
      const nap = new Int32Array(new SharedArrayBuffer(4))
      progressAt = started
      while (!writeOut()) {
        const now = Date.now()
        if (now - progressAt >= stallMs || now - started >= capMs) {
          end() // the reader is stuck, or too slow to wait for: drop the rest rather than hang
          break
        }
        Atomics.wait(nap, 0, 0, RETRY_MIN_MS)
      }
      settle()
    },
  }
}
