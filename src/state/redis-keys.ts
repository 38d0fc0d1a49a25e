// Redis key names of the shared state, all under the configured prefix. On Redis Cluster every key of one
// call carries one hash tag picked from that call's own key, so each script runs on one node and the keys of
// many clients spread over the nodes. A layout in use never changes: replicas of two versions must find the same keys.

/** Hash tags on Cluster. Each replay tag also has its own size counters, which size() visits one by one. */
export const CLUSTER_SHARDS = 64
const SLOTS = 16384

// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
const CRC_TABLE = (() => {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[i] = crc
  }
  return table
})()

function crc16(bytes: Uint8Array): number {
  let crc = 0
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ b) & 0xff]!
  return crc
}

/** The Cluster slot of `key`, as `CLUSTER KEYSLOT` computes it (the `{tag}` part when there is a non-empty one). */
export function keySlot(key: string): number {
  const open = key.indexOf('{')
  if (open !== -1) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) key = key.slice(open + 1, close)
  }
  return crc16(Buffer.from(key, 'utf8')) % SLOTS
}

// Shard i's tag hashes into the i-th 1/64 of the slot space, so the shards spread evenly over any cluster
// whose masters own contiguous slot ranges (what `redis-cli --cluster create` makes). Pure: every replica
// computes the same tags.
const SHARD_TAGS: readonly string[] = (() => {
  const width = SLOTS / CLUSTER_SHARDS
  const tags: string[] = []
  for (let shard = 0; shard < CLUSTER_SHARDS; shard++) {
    let found: string | undefined
    for (let n = 0; n < 1_000_000 && found === undefined; n++) {
      const candidate = `s${shard}.${n}`
      if (Math.floor(keySlot(candidate) / width) === shard) found = candidate
    }
    if (found === undefined) throw new Error(`no hash tag for shard ${shard}`)
    tags.push(`{${found}}`)
  }
  return tags
})()

export interface KeyLayout {
  /** The tags size() visits: one empty tag without Cluster. */
  readonly tags: readonly string[]
  /** The tag every key of a call on `key` shares. */
  tagOf(key: string): string
  replay(tag: string, key: string): string
  /** Entries expiring in `bucket` (a unix second), for the size gauge. */
  replayCount(tag: string, bucket: number): string
  /** The longest replay ttl in use (how far ahead size() looks). */
  replayHorizon(tag: string): string
  rateLimit(tag: string, key: string): string
}

/**
 * Single Redis and Sentinel: `<prefix>replay:<key>`, `<prefix>replay-count:<second>`, `<prefix>replay-horizon`,
 * `<prefix>rl:<key>` (the layout before Cluster support). Cluster: the same names with a tag right after
 * the prefix, `<prefix>{s12.34}replay:<key>` — the tag is one of 64, chosen by a hash of the call's key.
 */
export function keyLayout(prefix: string, cluster: boolean): KeyLayout {
  if (!cluster) {
    return {
      tags: [''],
      tagOf: () => '',
      replay: (_tag, key) => `${prefix}replay:${key}`,
      replayCount: (_tag, bucket) => `${prefix}replay-count:${bucket}`,
      replayHorizon: () => `${prefix}replay-horizon`,
      rateLimit: (_tag, key) => `${prefix}rl:${key}`,
    }
  }
  return {
    tags: SHARD_TAGS,
    tagOf: (key) => SHARD_TAGS[crc16(Buffer.from(key, 'utf8')) % CLUSTER_SHARDS]!,
    replay: (tag, key) => `${prefix}${tag}replay:${key}`,
    replayCount: (tag, bucket) => `${prefix}${tag}replay-count:${bucket}`,
    replayHorizon: (tag) => `${prefix}${tag}replay-horizon`,
    rateLimit: (tag, key) => `${prefix}${tag}rl:${key}`,
  }
}
