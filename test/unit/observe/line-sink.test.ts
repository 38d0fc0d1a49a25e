// The log destination (src/observe/line-sink.ts): one write per turn of the event loop, nothing lost
// while a reader is slow, never a blocked event loop, a bounded flush at exit, and an end to logging when
// the reader is gone.
import t, { type Test } from 'tap'
import fs from 'node:fs'
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { createLineSink, lineSinkOn, type LineSink } from '../../../src/observe/line-sink.js'

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code })
}

/** A descriptor stand-in: `script` says, write by write, how many bytes it takes or what it throws. */
function reader(script: (number | string | 'all')[] = []) {
  const got: string[] = []
  const offered: number[] = []
  let calls = 0
  const writeSync = (_fd: number, b: Buffer): number => {
    calls++
    offered.push(b.length)
    const step = script.shift() ?? 'all'
    if (typeof step === 'string' && step !== 'all') throw errno(step)
    const n = step === 'all' ? b.length : Math.min(step, b.length)
    got.push(b.subarray(0, n).toString())
    return n
  }
  return { writeSync, text: () => got.join(''), writes: () => got.length, calls: () => calls, offered }
}

t.test('the lines of one turn of the event loop go out in one write, in order', async (t) => {
  const r = reader()
  const sink = lineSinkOn(9, r.writeSync)
  sink.write('a\n')
  sink.write('b\n')
  sink.write('c\n')
  t.equal(r.calls(), 0, 'nothing is written within the turn')
  await nextTurn()
  t.equal(r.writes(), 1)
  t.equal(r.text(), 'a\nb\nc\n')
  sink.write('d\n')
  await nextTurn()
  t.equal(r.text(), 'a\nb\nc\nd\n')
  t.equal(r.writes(), 2)
})

t.test('a busy reader (EAGAIN, short writes): nothing lost, order kept, write() never waits', async (t) => {
  const r = reader(['EAGAIN', 3, 'EAGAIN', 'EAGAIN', 4])
  const sink = lineSinkOn(9, r.writeSync)
  sink.write('first line\n')
  await nextTurn()
  t.equal(r.text(), '', 'the reader took nothing yet')
  sink.write('second line\n')
  const started = Date.now()
  for (let i = 0; i < 50 && r.text().length < 23; i++) await sleep(10)
  t.equal(r.text(), 'first line\nsecond line\n')
  t.ok(Date.now() - started < 2000)
  let called = false
  sink.flush(() => (called = true))
  t.ok(called, 'flush calls back at once when nothing is waiting')
})

t.test('a stalled reader: each retry offers only the bytes it refused, and a backlog goes out in bounded writes, in order', async (t) => {
  const r = reader(Array.from({ length: 12 }, () => 'EAGAIN'))
  const sink = lineSinkOn(9, r.writeSync)
  const line = (i: number) => `${String(i).padStart(7, '0')} ${'y'.repeat(1000)}\n`
  sink.write(line(0))
  await nextTurn()
  // 4000 lines (~4 MB) arrive while the reader is stalled
  for (let i = 1; i < 4000; i++) {
    sink.write(line(i))
    if (i % 400 === 0) await sleep(12)
  }
  for (let i = 0; i < 800 && r.text().length < 4000 * 1009; i++) await sleep(10)
  const whileBusy = r.offered.slice(0, 12)
  t.same([...new Set(whileBusy)], [1009], 'every attempt while stalled offered the first line only, never a growing copy')
  t.equal(r.text(), Array.from({ length: 4000 }, (_, i) => line(i)).join(''), 'all lines, in order')
  t.ok(Math.max(...r.offered) <= (1 << 20) + 1009, `no write over the batch bound (largest ${Math.max(...r.offered)} bytes)`)
})

t.test('flushSync waits as long as a slow reader makes progress, gives up on one that stops, and at the cap', async (t) => {
  const slow = reader(Array.from({ length: 60 }, (_, i) => (i % 2 ? 100 : 'EAGAIN')))
  const sink = lineSinkOn(9, slow.writeSync)
  sink.write('z'.repeat(2999) + '\n')
  const started = Date.now()
  sink.flushSync(50, 5000)
  t.ok(Date.now() - started > 100, 'it took longer than the stall limit in all')
  t.equal(slow.text().length, 3000, 'and every byte went out')

  const trickle = reader(Array.from({ length: 100_000 }, (_, i) => (i % 2 ? 1 : 'EAGAIN')))
  const capped = lineSinkOn(9, trickle.writeSync)
  capped.write('w'.repeat(100_000) + '\n')
  const t0 = Date.now()
  capped.flushSync(1000, 300)
  const took = Date.now() - t0
  t.ok(took >= 290 && took < 2000, `a reader that never finishes is given up at the cap (${took} ms)`)
})

t.test('a write that takes nothing counts as busy, not as a loop', async (t) => {
  const r = reader([0, 0, 'all'])
  const sink = lineSinkOn(9, r.writeSync)
  sink.write('ok\n')
  await nextTurn()
  for (let i = 0; i < 100 && r.text() !== 'ok\n'; i++) await sleep(10)
  t.equal(r.text(), 'ok\n')
  t.equal(r.calls(), 3)
})

t.test('failed writes are reported at most once every 5 s, with what was dropped', async (t) => {
  const r = reader(['ENOSPC', 'ENOSPC', 'ENOSPC'])
  const sink = lineSinkOn(9, r.writeSync)
  const said: string[] = []
  const original = fs.writeSync
  ;(fs as { writeSync: unknown }).writeSync = (fd: number, text: string) => (fd === 2 ? (said.push(text), text.length) : original(fd, text))
  try {
    for (let i = 0; i < 3; i++) {
      sink.write('gone\n')
      await nextTurn()
    }
  } finally {
    ;(fs as { writeSync: unknown }).writeSync = original
  }
  t.equal(said.length, 1, said.join(''))
})

t.test('flush(cb) calls back once a busy reader took everything', async (t) => {
  const r = reader(['EAGAIN', 'EAGAIN'])
  const sink = lineSinkOn(9, r.writeSync)
  sink.write('x\n')
  const flushed = new Promise<void>((resolve) => sink.flush(() => resolve()))
  let done = false
  void flushed.then(() => (done = true))
  await nextTurn()
  t.notOk(done, 'not while the reader is busy')
  await flushed
  t.equal(r.text(), 'x\n')
})

/**
 * A line every `everyMs` from the start; after a while a flush. Resolves, 1.5 s later, with what the sink
 * wrote by then (`written()`), the last line written before the flush, and how long the flush took to call
 * back (undefined: not at all).
 */
async function flushUnderSteadyLogging(t: Test, sink: LineSink, everyMs: number, written: () => string) {
  let i = 0
  const logging = setInterval(() => sink.write(`line ${i++}\n`), everyMs)
  t.teardown(() => clearInterval(logging))
  await sleep(10 * everyMs)
  const last = `line ${i - 1}\n`
  const started = Date.now()
  let calledAfter: number | undefined
  sink.flush(() => (calledAfter = Date.now() - started))
  await sleep(1500)
  return { wentOut: written().includes(last), calledAfter }
}

t.test('flush(cb) on a slow reader under steady logging calls back once the lines written before it are out', async (t) => {
  // The reader takes one write in three (the others EAGAIN); a line comes every 3 ms all along.
  let n = 0
  const got: string[] = []
  const sink = lineSinkOn(9, (_fd, b) => {
    if (n++ % 3 !== 0) throw errno('EAGAIN')
    got.push(b.toString())
    return b.length
  })
  const { wentOut, calledAfter } = await flushUnderSteadyLogging(t, sink, 3, () => got.join(''))
  t.ok(wentOut, 'the lines written before the flush went out')
  t.ok(calledAfter !== undefined && calledAfter < 500, `called back ${calledAfter === undefined ? 'not at all while logging went on' : `after ${calledAfter} ms`}`)
})

t.test('flush(cb) on a stuck reader calls back after the bound, and the lines still wait for it', async (t) => {
  const r = reader(Array.from({ length: 400 }, () => 'EAGAIN'))
  const sink = lineSinkOn(9, r.writeSync)
  sink.write('held\n')
  const started = Date.now()
  await new Promise<void>((resolve) => sink.flush(() => resolve()))
  const took = Date.now() - started
  t.ok(took >= 900 && took < 3000, `called back after ${took} ms`)
  t.equal(r.text(), '')
  sink.flushSync(5000)
  t.equal(r.text(), 'held\n', 'the reader got the line once it took it')
})

t.test('a reader gone for good (EPIPE) ends logging without a throw; EBADF too', async (t) => {
  for (const code of ['EPIPE', 'EBADF']) {
    const r = reader([code])
    const sink = lineSinkOn(9, r.writeSync)
    sink.write('lost\n')
    await nextTurn()
    sink.write('after\n')
    await nextTurn()
    t.equal(r.calls(), 1, `${code}: no write is tried after it`)
    t.equal(r.text(), '')
  }
})

t.test('another failure (a full disk) drops that batch, says so on stderr, and goes on', async (t) => {
  const r = reader(['ENOSPC'])
  const sink = lineSinkOn(9, r.writeSync)
  const said: string[] = []
  const original = fs.writeSync
  ;(fs as { writeSync: unknown }).writeSync = (fd: number, text: string) => (fd === 2 ? (said.push(text), text.length) : original(fd, text))
  try {
    sink.write('dropped\n')
    await nextTurn()
  } finally {
    ;(fs as { writeSync: unknown }).writeSync = original
  }
  sink.write('kept\n')
  await nextTurn()
  t.equal(r.text(), 'kept\n')
  t.match(said.join(''), /writing log lines failed \(ENOSPC\); 8 bytes dropped/)
})

t.test('flushSync at exit: everything when the reader takes it; a stuck reader is given up within the bound', async (t) => {
  const ok = reader(['EAGAIN', 2])
  const sink = lineSinkOn(9, ok.writeSync)
  sink.write('one\n')
  sink.write('two\n')
  sink.flushSync(1000)
  t.equal(ok.text(), 'one\ntwo\n')

  const stuck = reader(Array.from({ length: 10_000 }, () => 'EAGAIN'))
  const held = lineSinkOn(9, stuck.writeSync)
  held.write('never\n')
  const started = Date.now()
  held.flushSync(200)
  const took = Date.now() - started
  t.ok(took >= 190 && took < 1500, `gave up after ${took} ms`)
  held.write('after\n')
  await nextTurn()
  t.equal(stuck.text(), '', 'nothing more is tried once it gave up')
})

t.test('a file destination: its directory is made, lines are appended', async (t) => {
  const dir = fs.mkdtempSync(join(process.env.TMPDIR ?? '/tmp', 'portcullis-sink-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'deep', 'gateway.log')
  const sink = createLineSink(file)
  sink.write('{"a":1}\n')
  await new Promise<void>((r) => sink.flush(() => r()))
  const again = createLineSink(file)
  again.write('{"b":2}\n')
  again.flushSync()
  t.equal(fs.readFileSync(file, 'utf8'), '{"a":1}\n{"b":2}\n')
})

/** A `later` stand-in: each batch waits until the test answers it (`answer(n | code)`), as a slow disk would. */
function slowFile() {
  const got: string[] = []
  const waitingOn: { b: Buffer; done: (err: NodeJS.ErrnoException | null, n: number) => void }[] = []
  const later = (_fd: number, b: Buffer, done: (err: NodeJS.ErrnoException | null, n: number) => void) => void waitingOn.push({ b, done })
  /** Answers the batch at `index` (0: the oldest still out). */
  const answer = (step: number | string | 'all' = 'all', index = 0) => {
    const [w] = waitingOn.splice(index, 1)
    if (!w) throw new Error('no batch is waiting')
    if (typeof step === 'string' && step !== 'all') return w.done(errno(step), 0)
    const n = step === 'all' ? w.b.length : step
    got.push(w.b.subarray(0, n).toString())
    w.done(null, n)
  }
  return { later, answer, batches: () => waitingOn.length, text: () => got.join('') }
}

t.test('a regular file is written off the loop: one batch at a time, the lines that came meanwhile in the next, in order', async (t) => {
  const f = slowFile()
  const sync = reader()
  const sink = lineSinkOn(9, sync.writeSync, f.later)
  sink.write('a\n')
  sink.write('b\n')
  await nextTurn()
  t.equal(f.batches(), 1, 'one batch went to the thread pool')
  sink.write('c\n')
  sink.write('d\n')
  await nextTurn()
  t.equal(f.batches(), 1, 'no second batch while the first is out')
  f.answer(3) // a short write: "a\nb" taken, "\n" left
  await nextTurn()
  f.answer()
  await nextTurn()
  f.answer()
  t.equal(f.text(), 'a\nb\nc\nd\n')
  t.equal(sync.calls(), 0, 'nothing was written on the loop thread')
  let flushed = false
  sink.flush(() => (flushed = true))
  t.ok(flushed, 'flush calls back at once when nothing is out or waiting')
})

t.test('a regular file: flush(cb) waits for the batch that is out; one that never comes back is let go after the bound', async (t) => {
  const f = slowFile()
  const sink = lineSinkOn(9, reader().writeSync, f.later)
  sink.write('x\n')
  await nextTurn()
  let done = false
  sink.flush(() => (done = true))
  await sleep(20)
  t.notOk(done, 'not while the write is out')
  f.answer()
  await nextTurn()
  t.ok(done, 'called back once it came back')

  const hung = slowFile()
  const stuck = lineSinkOn(9, reader().writeSync, hung.later)
  stuck.write('never answered\n')
  await nextTurn()
  const started = Date.now()
  await new Promise<void>((resolve) => stuck.flush(() => resolve()))
  const took = Date.now() - started
  t.ok(took >= 900 && took < 3000, `called back after ${took} ms`)
})

t.test('a regular file: flushSync at exit writes what came after the batch that is out, never that batch twice', async (t) => {
  const f = slowFile()
  const sync = reader()
  const sink = lineSinkOn(9, sync.writeSync, f.later)
  sink.write('out\n')
  await nextTurn()
  sink.write('after\n')
  sink.flushSync()
  t.equal(sync.text(), 'after\n', 'only the lines behind the batch that is out')
  f.answer() // the thread pool finishes its batch late
  await nextTurn()
  t.equal(f.text(), 'out\n')
  t.equal(sync.text(), 'after\n', 'and its late answer wrote nothing again')
})

t.test('a regular file: a failed write (a full disk) drops that batch and goes on; EBADF ends logging', async (t) => {
  const f = slowFile()
  const sink = lineSinkOn(9, reader().writeSync, f.later)
  const said: string[] = []
  const original = fs.writeSync
  ;(fs as { writeSync: unknown }).writeSync = (fd: number, text: string) => (fd === 2 ? (said.push(text), text.length) : original(fd, text))
  try {
    sink.write('dropped\n')
    await nextTurn()
    f.answer('ENOSPC')
  } finally {
    ;(fs as { writeSync: unknown }).writeSync = original
  }
  sink.write('kept\n')
  await nextTurn()
  f.answer()
  t.equal(f.text(), 'kept\n')
  t.match(said.join(''), /ENOSPC/)
  sink.write('last\n')
  await nextTurn()
  f.answer('EBADF')
  sink.write('not tried\n')
  await nextTurn()
  t.equal(f.batches(), 0, 'nothing is sent after EBADF')
})

const SINK_URL = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src', 'observe', 'line-sink.js')).href

for (const kind of ['a socket pair (a parent Node process)', 'a pipe (a shell pipeline)'] as const) {
  t.test(`on ${kind} nobody reads for a while, the event loop keeps turning, and every line arrives in order`, async (t) => {
    // The child writes 4 MB of lines (well over a pipe's buffer), then counts its timer ticks for 400 ms,
    // and tells whether its fd 1 was left blocking (O_NONBLOCK is 04000 in /proc's octal flags).
    const script = `
      const { createLineSink } = await import(${JSON.stringify(SINK_URL)})
      const { readFileSync } = await import('node:fs')
      const sink = createLineSink()
      for (let i = 0; i < 8000; i++) sink.write(String(i).padStart(6, '0') + ' ' + 'x'.repeat(500) + '\\n')
      let ticks = 0
      const timer = setInterval(() => ticks++, 10)
      setTimeout(() => {
        clearInterval(timer)
        const flags = parseInt(/flags:\\s+(\\d+)/.exec(readFileSync('/proc/self/fdinfo/1', 'utf8'))[1], 8)
        process.stderr.write('ticks ' + ticks + ' fd1 ' + ((flags & 0o4000) ? 'non-blocking' : 'blocking') + '\\n')
        sink.flush(() => process.exit(0))
      }, 400)
    `
    // Without NODE_OPTIONS: the hooks tap adds to every child it spawns touch the child's stdout, which makes
    // it non-blocking whatever the sink does (env -u runs after tap's spawn hook added them).
    const node = ['env', '-u', 'NODE_OPTIONS', process.execPath, '--input-type=module', '-e', script]
    const child = kind.startsWith('a pipe')
      ? spawn('sh', ['-c', 'exec 3>&1; "$@" | cat >&3', 'sh', ...node], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(node[0]!, node.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => void (child.exitCode === null && child.kill('SIGKILL')))
    child.stdout.pause()
    let err = ''
    child.stderr.on('data', (d) => (err += d))
    for (let i = 0; i < 300 && !err.includes('\n'); i++) await sleep(10)
    const ticks = Number(/ticks (\d+)/.exec(err)?.[1] ?? -1)
    t.ok(ticks >= 10, `the child's timer ran ${ticks} times while its stdout was full`)
    if (kind.startsWith('a pipe')) t.match(err, /fd1 blocking/, 'fd 1, shared with whoever else writes to the pipe, keeps its mode')
    const chunks: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => chunks.push(d))
    child.stdout.resume()
    const code = await new Promise<number | null>((r) => child.once('exit', r))
    await new Promise((r) => setImmediate(r))
    t.equal(code, 0)
    const lines = Buffer.concat(chunks).toString().split('\n').filter(Boolean)
    t.equal(lines.length, 8000, 'every line arrived')
    t.ok(lines.every((l, i) => l.startsWith(String(i).padStart(6, '0') + ' ') && l.length === 507), 'in order and whole')
  })
}

t.test('a regular file: flush(cb) calls back once the lines written before it are out, though logging goes on meanwhile', async (t) => {
  // A disk that takes 5 ms a batch, a line every 2 ms: some line always arrives while a batch is out,
  // and every batch comes back well within the stall limit.
  const got: string[] = []
  const later = (_fd: number, b: Buffer, done: (err: NodeJS.ErrnoException | null, n: number) => void) => void setTimeout(() => (got.push(b.toString()), done(null, b.length)), 5)
  const sink = lineSinkOn(9, () => {
    throw new Error('nothing is written on the loop thread here')
  }, later)
  const { wentOut, calledAfter } = await flushUnderSteadyLogging(t, sink, 2, () => got.join(''))
  t.ok(wentOut, 'the lines written before the flush went out within a few ms')
  t.ok(calledAfter !== undefined && calledAfter < 500, `flush called back ${calledAfter === undefined ? 'not at all in 1.5 s (only once logging stops)' : `after ${calledAfter} ms`}`)
})

t.test('a regular file: pino\'s fatal() calls flushSync mid-run; afterwards still one batch out at a time, the lines in order', async (t) => {
  const f = slowFile()
  const sink = lineSinkOn(9, (_fd, b) => b.length, f.later) // the fatal line, written on the loop thread, is not looked at here
  const logger = pino({ base: null, timestamp: false }, sink)
  logger.info('one')
  await nextTurn()
  t.equal(f.batches(), 1, 'a batch is out')
  logger.fatal('two') // pino: logFatal, then stream.flushSync(); the process goes on
  logger.info('three')
  await nextTurn()
  t.equal(f.batches(), 1, 'no second batch while the first is still with the thread pool')
  // Should two be out, the thread pool may finish them in either order:
  while (f.batches() > 0) {
    f.answer('all', f.batches() - 1)
    await nextTurn()
  }
  const msgs = f.text().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg)
  t.same(msgs.filter((m) => m !== 'two'), ['one', 'three'], 'the batches written through the thread pool are in order')
})

t.test('stdout redirected to a file: every line arrives, the exit flush included', async (t) => {
  const dir = fs.mkdtempSync(join(process.env.TMPDIR ?? '/tmp', 'portcullis-sink-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'out.log')
  const script = `
    const { createLineSink } = await import(${JSON.stringify(SINK_URL)})
    const fsm = (await import('node:fs')).default
    const writeSync = fsm.writeSync
    let onLoop = 0
    fsm.writeSync = (fd, ...rest) => (fd === 1 && onLoop++, writeSync(fd, ...rest))
    const sink = createLineSink()
    process.once('exit', () => sink.flushSync()) // as the logger does (observe/logger.ts)
    for (let i = 0; i < 3000; i++) sink.write(String(i).padStart(6, '0') + ' ' + 'x'.repeat(300) + '\\n')
    setImmediate(() => {
      for (let i = 3000; i < 6000; i++) sink.write(String(i).padStart(6, '0') + ' ' + 'x'.repeat(300) + '\\n')
      process.stderr.write('written on the loop thread: ' + onLoop + '\\n')
      process.exit(0) // the last lines go out in the exit flush
    })
  `
  const out = fs.openSync(file, 'a')
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', out, 'pipe'] })
  fs.closeSync(out)
  let err = ''
  child.stderr!.on('data', (d) => (err += d))
  const code = await new Promise<number | null>((r) => child.once('exit', r))
  t.equal(code, 0, err)
  t.match(err, /written on the loop thread: 0\n/, 'before the exit, every batch went to the thread pool')
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)
  t.equal(lines.length, 6000, 'every line arrived')
  t.same(lines.map((l) => l.slice(0, 6)).sort(), Array.from({ length: 6000 }, (_, i) => String(i).padStart(6, '0')), 'each once')
})
