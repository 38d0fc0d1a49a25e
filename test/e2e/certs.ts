// Throw-away PKI for TLS tests, made with the `openssl` command at test time in a temp dir:
// a CA, a server certificate for 127.0.0.1 / localhost, and client certificates (ours or another CA's).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Pem {
  cert: string
  key: string
  certFile: string
  keyFile: string
}

export interface TestPki {
  dir: string
  ca: Pem
  server: Pem
  /** A client certificate signed by `ca`. */
  client(name: string, o?: { subject?: string; san?: string }): Pem
  /** A client certificate signed by a CA the gateway does not trust. */
  foreignClient(subject: string): Pem
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

function pem(dir: string, name: string): Pem {
  const certFile = join(dir, `${name}.crt`)
  const keyFile = join(dir, `${name}.key`)
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile }
}

function selfSignedCa(dir: string, name: string, subject: string): Pem {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', subject, '-days', '2'], dir)
  return pem(dir, name)
}

function issue(dir: string, ca: string, name: string, subject: string, extensions: string): Pem {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir)
  writeFileSync(join(dir, `${name}.ext`), extensions)
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir)
  return pem(dir, name)
}

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-pki-'))
  const ca = selfSignedCa(dir, 'ca', '/CN=portcullis test CA')
  const server = issue(dir, 'ca', 'server', '/CN=localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  let foreignCa = false
  return {
    dir,
    ca,
    server,
    client: (name, o = {}) =>
      issue(dir, 'ca', name, o.subject ?? `/CN=${name}`, `extendedKeyUsage=clientAuth\n${o.san ? `subjectAltName=${o.san}\n` : ''}`),
    foreignClient(subject) {
      if (!foreignCa) {
        selfSignedCa(dir, 'other-ca', '/CN=someone else CA')
        foreignCa = true
      }
      return issue(dir, 'other-ca', `foreign-${Math.random().toString(36).slice(2, 8)}`, subject, 'extendedKeyUsage=clientAuth\n')
    },
  }
}
