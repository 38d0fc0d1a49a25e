// The memory held by 1 M entries in the memory replay cache (run with --expose-gc): heap plus
// array buffers after a forced GC, before and after filling it with worker-v1-shaped keys. The keys
// are built one at a time and dropped by the caller, so only what the cache keeps is counted.
import { MemoryReplayStore } from '../src/state/memory.js'

const N = Number(process.argv[2] ?? 1_000_000)
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with node --expose-gc')
function held(): number {
  gc!()
  gc!()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}
const before = held()
const store = new MemoryReplayStore(N)
const sig = 'f'.repeat(56)
const t0 = performance.now()
for (let i = 0; i < N; i++) {
  // w1:<id>:<ms timestamp>:<64 hex> — about 90 characters, the shape worker-v1 remembers
  const ok = await store.remember(`w1:w${i % 1000}:${1764579600000 + i}:${sig}${i.toString(16).padStart(8, '0')}`, 300_000)
  if (!ok) throw new Error(`entry ${i} reported as a replay`)
}
const ms = performance.now() - t0
const after = held()
process.stdout.write(JSON.stringify({ entries: N, bytes: after - before, mb: Math.round((after - before) / 1e5) / 10, insertNsPerEntry: Math.round((ms * 1e6) / N), rssMb: Math.round(process.memoryUsage().rss / 1e5) / 10 }) + '\n')
if (await store.remember(`w1:w0:${1764579600000}:${sig}${(0).toString(16).padStart(8, '0')}`, 300_000)) throw new Error('the first entry was forgotten')
