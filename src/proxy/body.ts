// Reads a request body into memory, bounded by bodyLimit, for methods that must verify it.
// The buffer it returns is exactly what is verified and forwarded.
import type { IncomingMessage } from 'node:http'

export class BodyTooLargeError extends Error {
  constructor() {
    super('body too large')
  }
}

export function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')
}

export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        cleanup()
        req.resume() // drain and discard; the 413 is sent with Connection: close
        reject(new BodyTooLargeError())
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resolve(Buffer.concat(chunks, size))
    }
    const onError = (err: Error) => {
      cleanup()
      reject(err)
    }
    const cleanup = () => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
  })
}
