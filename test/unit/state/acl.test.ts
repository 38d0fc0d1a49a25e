// The least-privilege Redis ACL user of docs/operations.md, on a private redis-server: the stores pass their
// whole contract as that user, and the user can touch nothing outside the prefix nor run anything else.

import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import t from 'tap'
import { RedisLink, RedisRateLimitStore, RedisReplayStore } from '../../../src/state/redis.js'
import { PrivateRedis, freePort } from './private-redis.js'
import { storeContract } from './store-contract.js'

/** Exactly the rule docs/operations.md gives (single Redis and Sentinel data nodes). */
export const GATEWAY_ACL = [
  'resetkeys', '~portcullis:*', 'resetchannels', '-@all',
  '+evalsha', '+eval', '+get', '+mget', '+set', '+incr', '+pexpire', '+pexpireat', '+pttl',
  '+ping', '+info', '+client|setname', '+quit',
]

const password = randomBytes(24).toString('hex')
const server = new PrivateRedis(await freePort())
await server.start()
await (async () => {
  const admin = new Redis(server.url, { maxRetriesPerRequest: 0 })
  try {
    await admin.call('ACL', 'SETUSER', 'portcullis-gw', 'on', `>${password}`, ...GATEWAY_ACL)
    await admin.set('other:secret', 'x')
  } finally {
    admin.disconnect()
  }
})()
const aclUrl = `redis://portcullis-gw:${password}@127.0.0.1:${server.port}`
t.teardown(() => server.stop())

// ioredis prints a warning (console.warn) when its INFO ready check is refused: the rule must allow what it needs.
const warnings: unknown[] = []
const warn = console.warn
console.warn = (...args: unknown[]) => void warnings.push(args)
t.teardown(() => {
  console.warn = warn
})

async function open(): Promise<RedisLink> {
  const link = new RedisLink({ url: aclUrl, prefix: 'portcullis:', timeoutMs: 2000 })
  if (!(await link.waitReady(3000))) throw new Error('ACL user could not connect')
  return link
}

storeContract(
  'redis as the least-privilege ACL user',
  async () => {
    const link = await open()
    return { replay: new RedisReplayStore(link), limits: new RedisRateLimitStore(link) }
  },
  { sizeLagMs: 1000 },
)

t.test('ACL user: nothing outside the prefix, no other command', async (t) => {
  const link = await open()
  const replay = new RedisReplayStore(link)
  t.teardown(() => replay.close())
  t.equal(await replay.remember(`acl-${randomBytes(4).toString('hex')}`, 10_000), true)
  t.ok((await replay.size()) >= 1, 'the gauge works (GET, MGET)')
  t.equal(await link.call((r) => r.ping()), 'PONG', 'the health probe works')
  const asUser = new Redis(aclUrl, { maxRetriesPerRequest: 0 })
  t.teardown(() => asUser.disconnect())
  await t.rejects(asUser.get('other:secret'), /NOPERM/, 'a key outside the prefix is refused')
  await t.rejects(asUser.flushall(), /NOPERM/, 'FLUSHALL is refused')
  await t.rejects(asUser.keys('*'), /NOPERM/, 'KEYS is refused')
  await t.rejects(asUser.call('CONFIG', 'GET', '*'), /NOPERM/, 'CONFIG is refused')
  await t.rejects(asUser.eval("return redis.call('GET', 'other:secret')", 0), /NOPERM|can't access/, 'a script cannot reach outside the prefix either')
  t.same(warnings, [], 'no ioredis warning (its INFO ready check is allowed)')
})
