// Request bodies in memory (DESIGN §2 `server.bufferLimit`): the bytes all bodies hold at once stay
// under the limit, and every reservation is given back — on success (at the exchange's end), on error,
// on abort, on a body too large.
import t from 'tap'
import { PassThrough } from 'node:stream'
import type { IncomingMessage } from 'node:http'
import { BodyTooLargeError, OverloadedError, bufferedBytes, readBody, releaseBody } from '../../../src/proxy/body.js'

/** A request stand-in: headers, and a stream the test writes the body into. */
function fakeRequest(headers: Record<string, string>): IncomingMessage & PassThrough & { complete: boolean } {
  const s = new PassThrough() as unknown as IncomingMessage & PassThrough & { complete: boolean }
  ;(s as { headers: Record<string, string> }).headers = headers
  s.complete = false
  s.on('end', () => (s.complete = true))
  return s
}

t.test('a Content-Length body reserves its length up front; released when the exchange ends', async (t) => {
  const a = fakeRequest({ 'content-length': '600' })
  const reading = readBody(a, 1000, 1000)
  t.equal(bufferedBytes(), 600, 'reserved before any byte arrived')
  const b = fakeRequest({ 'content-length': '600' })
  t.type(await readBody(b, 1000, 1000).catch((e: unknown) => e), OverloadedError, 'a second would pass bufferLimit')
  a.end(Buffer.alloc(600, 1))
  t.equal((await reading).length, 600)
  t.equal(bufferedBytes(), 600, 'still held while the request is forwarded')
  releaseBody(a)
  releaseBody(a)
  t.equal(bufferedBytes(), 0, 'released once at the end')
})

t.test('a chunked body reserves as its chunks arrive', async (t) => {
  const a = fakeRequest({ 'transfer-encoding': 'chunked' })
  const reading = readBody(a, 1000, 1000)
  a.write(Buffer.alloc(300))
  await new Promise((r) => setImmediate(r))
  t.equal(bufferedBytes(), 300)
  a.write(Buffer.alloc(300))
  await new Promise((r) => setImmediate(r))
  t.equal(bufferedBytes(), 600)
  const b = fakeRequest({ 'transfer-encoding': 'chunked' })
  const other = readBody(b, 1000, 1000)
  b.write(Buffer.alloc(500))
  t.type(await other.catch((e: unknown) => e), OverloadedError)
  a.end()
  await reading
  releaseBody(a)
  releaseBody(b)
})

t.test('released on error, on abort and on a body too large', async (t) => {
  const failing = fakeRequest({ 'content-length': '100' })
  const p1 = readBody(failing, 1000, 1000)
  failing.destroy(new Error('reset'))
  await t.rejects(p1)
  t.equal(bufferedBytes(), 0, 'error')

  const aborted = fakeRequest({ 'content-length': '100' })
  const p2 = readBody(aborted, 1000, 1000)
  aborted.write(Buffer.alloc(10))
  aborted.destroy()
  await t.rejects(p2)
  t.equal(bufferedBytes(), 0, 'abort')

  const big = fakeRequest({ 'transfer-encoding': 'chunked' })
  const p3 = readBody(big, 100, 1000)
  big.write(Buffer.alloc(101))
  t.type(await p3.catch((e: unknown) => e), BodyTooLargeError)
  t.equal(bufferedBytes(), 0, 'too large')
  releaseBody(failing)
  releaseBody(aborted)
  releaseBody(big)
})

t.test('a body whose exchange already ended is released as soon as it is read', async (t) => {
  const a = fakeRequest({ 'content-length': '50' })
  const reading = readBody(a, 1000, 1000)
  releaseBody(a) // the client went away while its body was being read
  a.end(Buffer.alloc(50))
  await reading
  t.equal(bufferedBytes(), 0)
})

t.test('without a bufferLimit nothing is refused', async (t) => {
  const a = fakeRequest({ 'content-length': '5' })
  const p = readBody(a, 1000)
  a.end('hello')
  t.equal((await p).toString(), 'hello')
  releaseBody(a)
})

t.test('a body of one chunk is that chunk; one of several is joined in order', async (t) => {
  const one = fakeRequest({ 'content-length': '5' })
  const reading = readBody(one, 1000)
  const chunk = Buffer.from('hello')
  one.end(chunk)
  t.equal(await reading, chunk, 'no copy of a single chunk')
  releaseBody(one)
  const many = fakeRequest({ 'transfer-encoding': 'chunked' })
  const joined = readBody(many, 1000)
  for (const part of ['ab', 'cd', 'ef']) {
    many.write(Buffer.from(part))
    await new Promise((r) => setImmediate(r))
  }
  many.end()
  t.equal((await joined).toString(), 'abcdef')
  releaseBody(many)
})

t.test('every test above left nothing held', async (t) => {
  t.equal(bufferedBytes(), 0)
})
