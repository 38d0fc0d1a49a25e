// The exit-time flush gives up on a reader that is gone instead of retrying forever like sonic-boom does.
import t from 'tap'
import fs from 'node:fs'
import { boundExitFlush } from '../../../src/observe/exit-flush.js'

/** A flushSync shaped like sonic-boom's: retries every failed write until everything is written. */
function retryingDestination(fd: number, pending: string[]) {
  let attempts = 0
  return {
    get attempts() {
      return attempts
    },
    flushSync() {
      while (pending.length) {
        attempts++
        if (attempts > 10_000) throw new Error('would loop forever')
        try {
          const n = fs.writeSync(fd, pending[0]!)
          pending[0] = pending[0]!.slice(n)
          if (!pending[0]) pending.shift()
        } catch {
          // sonic-boom sleeps and tries again, whatever the error
        }
      }
    },
  }
}

t.test('a write that fails for good (EBADF, EPIPE) ends the flush; fs.writeSync is restored', async (t) => {
  const original = fs.writeSync
  const dest = boundExitFlush(retryingDestination(987_654, ['line one\n', 'line two\n']))
  dest.flushSync()
  t.equal(dest.attempts, 2, 'one attempt per pending chunk, then dropped')
  t.equal(fs.writeSync, original)
})

t.test('a working destination is flushed normally', async (t) => {
  const file = `${process.env.TMPDIR ?? '/tmp'}/portcullis-exit-flush-${process.pid}.log`
  const fd = fs.openSync(file, 'w')
  t.teardown(() => fs.rmSync(file, { force: true }))
  boundExitFlush(retryingDestination(fd, ['a\n', 'b\n'])).flushSync()
  fs.closeSync(fd)
  t.equal(fs.readFileSync(file, 'utf8'), 'a\nb\n')
})
