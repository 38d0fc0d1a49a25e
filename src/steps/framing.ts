// Step 0 (DESIGN §3): framing the HTTP parser lets through but a gateway must not. Two Host headers,
// a CONNECT, an Expect it does not implement, chunked HTTP/1.0, or an upgrade that carries a body are
// the classic ways to make two hops disagree about where one request ends: refuse, close, forward nothing.
import type { IncomingMessage } from 'node:http'
import type { Denial } from '../exchange.js'
import { hasBody } from '../proxy/body.js'

export function hasValidHost(req: IncomingMessage): boolean {
  // Counted in the raw header list (req.headers keeps only the first Host); headersDistinct would build
  // an object of arrays for every header of every request to answer this.
  const raw = req.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++
  }
  return hosts === 1 || (hosts === 0 && req.httpVersion === '1.0')
}

/** `Connection: upgrade` (a token of it), with or without an Upgrade header Node would act on. */
function asksUpgrade(req: IncomingMessage): boolean {
  const c = req.headers.connection
  return c !== undefined && /(?:^|,)\s*upgrade\s*(?:,|$)/i.test(c)
}

function refuse(message: string): Denial {
  return { code: 'BAD_REQUEST', message, close: true }
}

export function checkFraming(req: IncomingMessage, upgrade: boolean): Denial | undefined {
  if (req.method === 'CONNECT') return refuse('CONNECT is not supported')
  // A request line without a version (HTTP/0.9 to the parser) or any version but 1.x: not HTTP/1 framing.
  if (req.httpVersion !== '1.1' && req.httpVersion !== '1.0') return refuse('Only HTTP/1.0 and HTTP/1.1 are supported')
  if (!hasValidHost(req)) return refuse('Exactly one Host header is required')
  const expect = req.headers.expect
  if (expect !== undefined && expect.trim().toLowerCase() !== '100-continue') return refuse('Only Expect: 100-continue is supported')
  if (req.httpVersion === '1.0' && req.headers['transfer-encoding'] !== undefined) return refuse('Transfer-Encoding is not allowed in HTTP/1.0')
  // The body of an upgrade would stay unread until after a 101: a backend that answers before reading it
  // leaves the next request's bytes to be taken as that body (DESIGN §3 step 0, on every route).
  if ((upgrade || asksUpgrade(req)) && hasBody(req)) return refuse('An upgrade request cannot have a body')
  return undefined
}
