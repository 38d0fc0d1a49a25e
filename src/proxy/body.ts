// Reads a request body into memory, bounded by bodyLimit, for methods that must verify it, and keeps
// the bytes all such bodies hold at once under server.bufferLimit (DESIGN §2) for the whole process.
// The buffer it returns is exactly what is verified and forwarded. Every reservation is given back:
// at once when a read fails, otherwise when the exchange ends (releaseBody).
import type { IncomingMessage } from 'node:http'

export class BodyTooLargeError extends Error {
  constructor() {
    super('body too large')
  }
}

/** Holding this body would pass server.bufferLimit (503 OVERLOADED). */
export class OverloadedError extends Error {
  constructor() {
    super('buffer limit reached')
  }
}

/** Bytes reserved by bodies in memory, across all requests of this process (survives reloads). */
let held = 0

export function bufferedBytes(): number {
  return held
}

// Per request: what it holds, and whether its exchange is over (then a late read releases at once).
const kHeld = Symbol('portcullis.bodyBytes')
const kEnded = Symbol('portcullis.exchangeEnded')
type Holder = IncomingMessage & { [kHeld]?: number; [kEnded]?: boolean }

function reserve(req: Holder, bytes: number, bufferLimit: number): boolean {
  if (held + bytes > bufferLimit) return false
  held += bytes
  req[kHeld] = (req[kHeld] ?? 0) + bytes
  return true
}

function give(req: Holder, bytes: number): void {
  const mine = Math.min(bytes, req[kHeld] ?? 0)
  req[kHeld] = (req[kHeld] ?? 0) - mine
  held -= mine
}

/**
 * The exchange of `req` is over (its response closed, or its tunnel ended): every byte its bodies
 * reserved is given back. Idempotent; a body read that completes later is released as it completes.
 */
export function releaseBody(req: IncomingMessage): void {
  const r = req as Holder
  r[kEnded] = true
  give(r, r[kHeld] ?? 0)
}

export function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')
}

/**
 * Reads the body within `limit` bytes. With `bufferLimit`, its bytes count against the process-wide
 * budget: a Content-Length body reserves its whole length before the first byte is read, a chunked one
 * as its chunks arrive; past the budget it rejects with OverloadedError (the rest is drained unread).
 */
export function readBody(req: IncomingMessage, limit: number, bufferLimit = Infinity): Promise<Buffer> {
  const r = req as Holder
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let reserved = 0
    const cl = req.headers['content-length']
    const declared = req.headers['transfer-encoding'] === undefined && cl !== undefined && /^[0-9]+$/.test(cl) ? Math.min(Number(cl), limit) : undefined
    const fail = (err: Error) => {
      cleanup()
      give(r, reserved)
      reserved = 0
      req.resume() // drain and discard; the 413 / 503 is sent with Connection: close
      reject(err)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) return fail(new BodyTooLargeError())
      if (size > reserved) {
        if (!reserve(r, size - reserved, bufferLimit)) return fail(new OverloadedError())
        reserved = size
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      // Bytes declared but never sent are not held.
      if (reserved > size) {
        give(r, reserved - size)
        reserved = size
      }
      if (r[kEnded]) give(r, reserved)
      // A body that came in one chunk (most small ones) is that chunk: Node gives each its own memory.
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
    }
    const onError = (err: Error) => {
      cleanup()
      give(r, reserved)
      reserved = 0
      reject(err)
    }
    // The client went away before the end: nothing more will come, and nothing is held.
    const onClose = () => {
      if (!req.complete) onError(new Error('request body incomplete'))
    }
    const cleanup = () => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    if (declared !== undefined && declared > 0) {
      if (!reserve(r, declared, bufferLimit)) return fail(new OverloadedError())
      reserved = declared
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}
