// mTLS matching rules (DESIGN §4.5): DN normalization, SAN parsing and the owner lookup order,
// on certificates made with openssl at test time.
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { certificateDn, certificateSans, findOwner, normalizeDn } from '../../../src/auth/mtls.js'
import { makePki } from '../../e2e/certs.js'

t.test('normalizeDn: spaces around separators dropped, types upper-cased, escapes kept', async (t) => {
  t.equal(normalizeDn('CN=ci-runner'), 'CN=ci-runner')
  t.equal(normalizeDn('cn = ci-runner , o = Acme\\, Inc ,C=US'), 'CN=ci-runner,O=Acme\\, Inc,C=US')
  t.equal(normalizeDn('CN=a b'), 'CN=a b', 'inner spaces of a value are kept')
})

t.test('certificate DN and SANs as the gateway reads them', async (t) => {
  const pki = makePki()
  const c = new X509Certificate(pki.client('x', { subject: '/C=US/O=Acme, Inc/CN=bot', san: 'DNS:bot.example,URI:spiffe://acme/bot,IP:10.1.2.3,email:bot@acme.example' }).cert)
  t.equal(certificateDn(c), 'CN=bot,O=Acme\\, Inc,C=US', 'what openssl x509 -nameopt RFC2253 prints')
  t.same(certificateSans(c), ['DNS:bot.example', 'URI:spiffe://acme/bot', 'IP:10.1.2.3', 'email:bot@acme.example'])

  const owner = (name: string) => ({ name, roles: [] })
  const table = (o: { dn?: string; cn?: string; san?: string }) => ({
    byDn: new Map(o.dn ? [[o.dn, owner('by-dn')]] : []),
    byCn: new Map(o.cn ? [[o.cn, owner('by-cn')]] : []),
    bySan: new Map(o.san ? [[o.san, owner('by-san')]] : []),
  })
  t.equal(findOwner(table({ dn: 'CN=bot,O=Acme\\, Inc,C=US', cn: 'bot', san: 'DNS:bot.example' }), c)?.name, 'by-dn', 'full DN first')
  t.equal(findOwner(table({ cn: 'bot', san: 'DNS:bot.example' }), c)?.name, 'by-cn', 'then CN')
  t.equal(findOwner(table({ san: 'URI:spiffe://acme/bot' }), c)?.name, 'by-san', 'then a SAN entry')
  t.equal(findOwner(table({ dn: 'CN=bot', san: 'DNS:other.example' }), c), undefined)
})
