// Redis key layout: Cluster's slot function matches Redis' own, the 64 hash tags cover the slot space
// evenly, every key of one call shares its tag, and the single-Redis layout is the one older versions use.
import t from 'tap'
import { CLUSTER_SHARDS, keyLayout, keySlot } from '../../../src/state/redis-keys.js'

t.test('keySlot is CLUSTER KEYSLOT (CRC16/XMODEM mod 16384, {tag} aware)', async (t) => {
  t.equal(keySlot('123456789'), 0x31c3, 'the CRC16 check value')
  t.equal(keySlot('foo'), 12182)
  t.equal(keySlot('somekey'), 11058)
  t.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'), 'same tag, same slot')
  t.not(keySlot('foo{}{bar}'), keySlot('bar'), 'an empty {} hashes the whole key')
})

t.test('cluster layout: one tag per call, 64 tags spread over the slot space', async (t) => {
  const k = keyLayout('portcullis:', true)
  t.equal(k.tags.length, CLUSTER_SHARDS)
  const shards = new Set(k.tags.map((tag) => Math.floor(keySlot(tag) / (16384 / CLUSTER_SHARDS))))
  t.equal(shards.size, CLUSTER_SHARDS, 'each tag in its own 1/64 of the slots')
  const tag = k.tagOf('workers:w-1:nonce')
  const slots = new Set([k.replay(tag, 'workers:w-1:nonce'), k.replayCount(tag, 1234), k.replayHorizon(tag)].map(keySlot))
  t.equal(slots.size, 1, 'the replay script keys share one slot')
  t.equal(k.tagOf('workers:w-1:nonce'), tag, 'the same key always picks the same tag (every replica agrees)')
  t.match(k.replay(tag, 'x'), /^portcullis:\{s\d+\.\d+\}replay:x$/)
  const used = new Set(Array.from({ length: 2000 }, (_, i) => k.tagOf(`ip:10.0.${i >> 8}.${i & 255}`)))
  t.ok(used.size > 56, `keys of many clients use most tags (${used.size} of 64)`)
})

t.test('single Redis and Sentinel: the untagged layout (rolling upgrades share keys)', async (t) => {
  const k = keyLayout('portcullis:', false)
  t.same(k.tags, [''])
  t.equal(k.replay(k.tagOf('n'), 'n'), 'portcullis:replay:n')
  t.equal(k.replayCount('', 7), 'portcullis:replay-count:7')
  t.equal(k.replayHorizon(''), 'portcullis:replay-horizon')
  t.equal(k.rateLimit(k.tagOf('rl:/a:id:x'), 'rl:/a:id:x'), 'portcullis:rl:rl:/a:id:x')
})
