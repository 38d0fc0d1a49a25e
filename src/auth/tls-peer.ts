// The client certificate of a TLS connection, as verified in that connection's own handshake (DESIGN §4.5).
// Renegotiation is refused and the certificate is pinned when the handshake completes: a certificate
// presented later (TLS 1.2 renegotiation) must never become the connection's identity.
import type { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'

const kPeer = Symbol('portcullis.handshakePeer')

export interface HandshakePeer {
  cert: X509Certificate
  /** The chain verified against server.tls.clientCa in the handshake (the TLS layer does not require it). */
  authorized: boolean
}

type Pinned = TLSSocket & { [kPeer]?: HandshakePeer | null }

/** On `secureConnection`: refuse renegotiation, then remember what the handshake verified. */
export function pinHandshakePeer(socket: TLSSocket): void {
  socket.disableRenegotiation()
  const cert = socket.getPeerX509Certificate()
  ;(socket as Pinned)[kPeer] = cert ? { cert, authorized: socket.authorized === true } : null
}

/** The pinned peer; a socket that was never pinned (not our listener) has none. */
export function handshakePeer(socket: TLSSocket): HandshakePeer | undefined {
  return (socket as Pinned)[kPeer] ?? undefined
}
