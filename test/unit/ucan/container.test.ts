// Container 0.1: the reference test vectors (container layer only: they hold -rc.1 tokens, which the
// gateway refuses), our own round trip in every text header, and the bounds (64 KiB, gzip bombs, depth).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { decodeContainerBytes, decodeContainerText, encodeContainer } from '../../../src/ucan/container.js'
import { decodeToken } from '../../../src/ucan/token.js'
import { scanCbor } from '../../../src/ucan/cbor.js'
import { chain } from './helpers.js'

const DIR = new URL('../../../../test/fixtures/ucan/container-testvectors/', import.meta.url)
const VECTORS = ['Base64StdPadding', 'Base64StdPaddingGzipped', 'Base64URL', 'Base64URLGzipped', 'Bytes', 'BytesGzipped']

t.test('every container test vector decodes; its tokens are -rc.1 and refused as tokens', async (t) => {
  let n = 0
  for (const name of VECTORS) {
    const bytes = new Uint8Array(readFileSync(new URL(name, DIR)))
    const tokens = decodeContainerBytes(bytes)
    t.ok(tokens.length > 0, `${name}: ${tokens.length} tokens`)
    if (name.startsWith('Base64')) t.same(decodeContainerText(Buffer.from(bytes).toString('latin1')), tokens, `${name}: text form`)
    for (const tok of tokens) t.throws(() => decodeToken(tok), { name: 'Malformed' })
    n++
  }
  t.comment(`container test vectors: ${n} of ${VECTORS.length}`)
  t.equal(n, VECTORS.length)
})

t.test('the raw-bytes headers @ and M are refused in text (an HTTP header carries text)', async (t) => {
  const raw = new Uint8Array(readFileSync(new URL('Bytes', DIR)))
  t.throws(() => decodeContainerText(Buffer.from(raw).toString('latin1')), { name: 'ContainerError' })
})

t.test('round trip in B, C, O, P; deduplicated and bytewise ordered', async (t) => {
  const c = chain()
  for (const header of ['B', 'C', 'O', 'P'] as const) {
    const text = encodeContainer([...c.tokens, c.tokens[0]!], { header })
    t.equal(text[0], header)
    const back = decodeContainerText(text)
    t.equal(back.length, 2)
    t.ok(Buffer.compare(Buffer.from(back[0]!), Buffer.from(back[1]!)) < 0)
  }
})

t.test('malformed containers are ContainerError, never another throw', async (t) => {
  const c = encodeContainer(chain().tokens)
  for (const bad of ['', 'X' + c.slice(1), c + '=', c.slice(0, -1) + '!', 'B', 'C====', 'Bzzz', c.replace(/=+$/, '')]) {
    t.throws(() => decodeContainerText(bad), { name: 'ContainerError' }, JSON.stringify(bad.slice(0, 12)))
  }
  const notCanonicalB64 = c.endsWith('==') ? c.slice(0, -3) + String.fromCharCode(c.charCodeAt(c.length - 3) + 1) + '==' : undefined
  if (notCanonicalB64) t.throws(() => decodeContainerText(notCanonicalB64), { name: 'ContainerError' }, 'stray bits in the last base64 character')
})

t.test('a gzip bomb costs at most 64 KiB: refused', async (t) => {
  const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024))
  t.throws(() => decodeContainerText('O' + bomb.toString('base64')), { name: 'ContainerError' })
  const big = gzipSync(Buffer.alloc(65 * 1024))
  t.throws(() => decodeContainerText('P' + big.toString('base64url')), { name: 'ContainerError' })
})

t.test('CBOR bounds: depth, items, indefinite lengths, tags, small floats, huge integers', async (t) => {
  const deep = new Uint8Array(200).fill(0x81)
  t.throws(() => scanCbor(Uint8Array.from([...deep, 0x00])), { name: 'CborError' }, 'depth')
  t.throws(() => scanCbor(Uint8Array.from([0x9f, 0xff])), { name: 'CborError' }, 'indefinite array')
  t.throws(() => scanCbor(Uint8Array.from([0xc1, 0x00])), { name: 'CborError' }, 'tag 1')
  t.throws(() => scanCbor(Uint8Array.from([0xf9, 0x3c, 0x00])), { name: 'CborError' }, 'float16')
  t.throws(() => scanCbor(Uint8Array.from([0xf7])), { name: 'CborError' }, 'undefined')
  t.throws(() => scanCbor(Uint8Array.from([0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), { name: 'CborError' }, 'uint64')
  t.throws(() => scanCbor(Uint8Array.from([0x9b, 0, 0, 0, 0, 0, 0, 0x10, 0])), { name: 'CborError' }, 'array longer than the input')
  t.throws(() => scanCbor(Uint8Array.from([0x5a, 0xff, 0xff, 0xff, 0xff])), { name: 'CborError' }, 'bytes past the end')
  t.doesNotThrow(() => scanCbor(Uint8Array.from([0x82, 0xf5, 0xfb, 0, 0, 0, 0, 0, 0, 0, 0])))
})
