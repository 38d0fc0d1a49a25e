// Top self-time functions of a V8 .cpuprofile (from `node --cpu-prof`): `node dist/bench/profile-summary.js FILE [N] [SKIP_S]`;
// SKIP_S leaves out the first seconds of the profile (start-up: config compile, module loading).
import { readFileSync } from 'node:fs'

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
const prof = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] }
const top = Number(process.argv[3] ?? 30)
const byId = new Map(prof.nodes.map((n) => [n.id, n]))
const self = new Map<string, number>()
const byFile = new Map<string, number>()
let total = 0
const skipUs = Number(process.argv[4] ?? 0) * 1e6
let at = 0
for (let i = 0; i < prof.samples.length; i++) {
  const node = byId.get(prof.samples[i]!)!
  const dt = prof.timeDeltas[i] ?? 0
  at += dt
  if (at < skipUs) continue
  const f = node.callFrame
  const where = f.url ? `${f.url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, 'dist/')}:${f.lineNumber + 1}` : ''
  const key = `${f.functionName || '(anonymous)'} ${where}`
  self.set(key, (self.get(key) ?? 0) + dt)
  const file = f.url ? f.url.replace(/^.*\/node_modules\/((@[^/]+\/)?[^/]+)\/.*$/, '$1').replace(/^.*\/dist\//, 'dist/') : `(${f.functionName || 'native'})`
  byFile.set(file, (byFile.get(file) ?? 0) + dt)
  total += dt
}
const idle = [...self.entries()].filter(([k]) => k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0)
const busy = total - idle
process.stdout.write(`busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s sampled; % of busy time, self:\n`)
for (const [k, v] of [...self.entries()].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`${((v / busy) * 100).toFixed(1).padStart(5)}%  ${k}\n`)
}
process.stdout.write('\nby file or package, self:\n')
for (const [k, v] of [...byFile.entries()].filter(([k]) => !k.startsWith('((idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
  process.stdout.write(`${((v / busy) * 100).toFixed(1).padStart(5)}%  ${k}\n`)
}
