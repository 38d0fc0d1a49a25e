// Request framing the HTTP parser lets through but a gateway must not: a request needs exactly one
// Host (HTTP/1.0 may have none). Two Host headers are a classic way to make two hops disagree.
import type { IncomingMessage } from 'node:http'

export function hasValidHost(req: IncomingMessage): boolean {
  const raw = req.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++
  }
  return hosts === 1 || (hosts === 0 && req.httpVersion === '1.0')
}
