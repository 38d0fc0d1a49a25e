// `state:` in gateway.yaml: the Redis shapes (url, sentinels + name, cluster), per-purpose onStoreError and its
// one-word form, and the errors a wrong shape gets (FILE:LINE:COL naming the field, never the url's password).
import t from 'tap'
import { loadConfigText, type LoadResult } from '../../../src/config/load.js'

const FILE = '/etc/portcullis/gateway.yaml'

function config(state: string): string {
  return `version: 1
server: { listen: 127.0.0.1:0 }
${state}
upstreams:
  be: { url: "http://127.0.0.1:9000" }
routes:
  - { path: /p, upstream: be, public: true }
`
}

function messages(r: LoadResult): string[] {
  return r.ok ? [] : r.errors.map((e) => `${e.line}:${e.col}: ${e.message}`)
}

t.test('onStoreError: default per purpose, one word for both, an object, and unknown keys refused', async (t) => {
  const absent = loadConfigText(config('state: { store: memory }'), FILE)
  t.ok(absent.ok)
  if (absent.ok) t.same(absent.gateway.state.onStoreError, { replay: 'deny', rateLimit: 'local' }, 'default { replay: deny, rateLimit: local }')
  const word = loadConfigText(config('state: { onStoreError: allow }'), FILE)
  if (word.ok) t.same(word.gateway.state.onStoreError, { replay: 'allow', rateLimit: 'allow' }, 'one word: both purposes')
  else t.fail(messages(word).join('\n'))
  const obj = loadConfigText(config('state: { onStoreError: { rateLimit: deny } }'), FILE)
  if (obj.ok) t.same(obj.gateway.state.onStoreError, { replay: 'deny', rateLimit: 'deny' })
  else t.fail(messages(obj).join('\n'))
  const typo = loadConfigText(config('state: { onStoreError: { replays: allow } }'), FILE)
  t.notOk(typo.ok, 'an unknown purpose is an error')
  t.match(messages(typo).join('\n'), /^3:/m, 'at the state line')
})

t.test('state.redis shapes: url, sentinels + name, cluster (url then only carries credentials and TLS)', async (t) => {
  const single = loadConfigText(config('state: { store: redis, redis: { url: "redis://127.0.0.1:6379" } }'), FILE)
  if (single.ok) t.same(single.gateway.state.redis, { prefix: 'portcullis:', url: 'redis://127.0.0.1:6379' })
  else t.fail(messages(single).join('\n'))

  const sentinel = loadConfigText(
    config('state:\n  store: redis\n  redis: { sentinels: ["10.0.0.5:26379", "[::1]:26380"], name: mymaster, url: "rediss://gw:pw@ignored:1" }'),
    FILE,
  )
  if (sentinel.ok) {
    t.same(sentinel.gateway.state.redis, {
      prefix: 'portcullis:',
      url: 'rediss://gw:pw@ignored:1',
      sentinels: [
        { host: '10.0.0.5', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      name: 'mymaster',
    })
  } else t.fail(messages(sentinel).join('\n'))

  const cluster = loadConfigText(config('state: { store: redis, redis: { cluster: ["redis://10.0.0.5:7000"], prefix: "pc:" } }'), FILE)
  if (cluster.ok) t.same(cluster.gateway.state.redis, { prefix: 'pc:', cluster: [{ host: '10.0.0.5', port: 7000 }] }, 'one seed, no url')
  else t.fail(messages(cluster).join('\n'))
})

t.test('state.redis: wrong shapes are errors at the field', async (t) => {
  const cases: [string, RegExp][] = [
    ['state: { store: redis, redis: { sentinels: ["10.0.0.5:26379"] } }', /3:\d+: .*sentinels need name/],
    ['state: { store: redis, redis: { name: mymaster, url: "redis://h:1" } }', /3:\d+: .*needs sentinels/],
    ['state: { store: redis, redis: { sentinels: ["a:1"], name: m, cluster: ["b:2"] } }', /3:\d+: .*one/],
    ['state: { store: redis, redis: { prefix: "x:" } }', /needs url, sentinels \+ name, or cluster/],
    ['state: { store: redis, redis: { cluster: ["no-port"] } }', /3:\d+: .*cluster\[0\].*host:port/],
    ['state: { store: redis, redis: { cluster: ["h:1"], prefix: "{pc}:" } }', /must not contain \{ or \}/],
    ['state: { store: redis, redis: { url: "http://gw:s3cret-password@h:1" } }', /redis:\/\/ or rediss:\/\//],
    ['state: { store: redis }', /store: redis needs state.redis/],
  ]
  for (const [state, expected] of cases) {
    const r = loadConfigText(config(state), FILE)
    t.notOk(r.ok, state)
    t.match(messages(r).join('\n'), expected, state)
    t.notMatch(messages(r).join('\n'), /s3cret-password/, 'never the url')
  }
})
