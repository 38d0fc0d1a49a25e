// The metric families behind metrics.ts: what prom-client's registry prints from them, and a removed
// series leaves nothing behind (label values that come and go must not grow the process).
import t from 'tap'
import { Registry } from 'prom-client'
import { FastCounter, FastGauge, FastHistogram } from '../../../src/observe/series.js'

t.test('counters, gauges and histograms print as prom-client prints its own', async (t) => {
  const registry = new Registry()
  const c = new FastCounter('x_total', 'help x', ['route', 'method'], registry)
  const g = new FastGauge('y', 'help y', ['route'], registry)
  const h = new FastHistogram('z_seconds', 'help z', ['route'], [0.1, 1], registry)
  c.labels('/a', 'GET').value += 2
  g.labels('/a').value = 5
  h.labels('/a').observe(0.5)
  h.labels('/b') // resolved, never observed: not printed
  const text = await registry.metrics()
  t.match(text, '# TYPE x_total counter\nx_total{route="/a",method="GET"} 2')
  t.match(text, '# TYPE y gauge\ny{route="/a"} 5')
  t.match(text, 'z_seconds_bucket{le="0.1",route="/a"} 0\nz_seconds_bucket{le="1",route="/a"} 1\nz_seconds_bucket{le="+Inf",route="/a"} 1\nz_seconds_sum{route="/a"} 0.5\nz_seconds_count{route="/a"} 1')
  t.notMatch(text, 'route="/b"')
})

t.test('a removed series leaves no map behind, whatever its label values were', async (t) => {
  const registry = new Registry()
  const g = new FastGauge('last_used', 'help', ['identity', 'fingerprint'], registry)
  g.labels('keep', 'token:000001').value = 1
  for (let i = 0; i < 1000; i++) {
    g.labels(`jwt:subject-${i}`, `token:${i}`).value = i
    g.remove(`jwt:subject-${i}`, `token:${i}`)
  }
  const root = (g as unknown as { children: { root: Map<string, unknown>; all: Set<unknown> } }).children
  t.equal(root.all.size, 1)
  t.equal(root.root.size, 1, 'only the identity still in use has a map')
  t.match(await registry.metrics(), 'last_used{identity="keep",fingerprint="token:000001"} 1')
  g.remove('keep', 'token:000001')
  t.equal(root.root.size, 0)
})
