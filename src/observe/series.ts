// Metric families counted with plain arithmetic on a child resolved once per label set, and handed to
// prom-client only at scrape time. A prom-client Counter or Histogram validates and hashes its label set
// on every inc/observe, even through `labels()`; per request that cost more than the rest of the metrics
// together (docs/performance.md). prom-client still owns the registry and the text exposition.
import type { Registry } from 'prom-client'

type Labels = Record<string, string>

interface Value {
  labels: Labels
  value: number
  metricName?: string
}

/** A label trie: one Map per label position, so resolving a child allocates nothing once it exists. */
class Children<C> {
  private readonly root = new Map<string, unknown>()
  readonly all = new Set<C>()

  constructor(
    private readonly labelNames: readonly string[],
    private readonly make: (labels: Labels) => C,
  ) {}

  get(values: readonly string[]): C {
    let m = this.root
    const last = this.labelNames.length - 1
    for (let i = 0; i < last; i++) {
      let next = m.get(values[i]!) as Map<string, unknown> | undefined
      if (next === undefined) m.set(values[i]!, (next = new Map()))
      m = next
    }
    let c = m.get(values[last]!) as C | undefined
    if (c === undefined) {
      const labels: Labels = {}
      this.labelNames.forEach((n, i) => (labels[n] = values[i]!))
      m.set(values[last]!, (c = this.make(labels)))
      this.all.add(c)
    }
    return c
  }

  delete(values: readonly string[]): void {
    const path: Map<string, unknown>[] = [this.root]
    for (let i = 0; i < this.labelNames.length - 1; i++) {
      const next = path[i]!.get(values[i]!) as Map<string, unknown> | undefined
      if (next === undefined) return
      path.push(next)
    }
    const last = values.length - 1
    const c = path[last]!.get(values[last]!) as C | undefined
    if (c === undefined) return
    this.all.delete(c)
    // Emptied maps go too: label values that come and go (an identity per JWT subject) must not leave one each.
    for (let i = last; i >= 0; i--) {
      path[i]!.delete(values[i]!)
      if (path[i]!.size > 0) break
    }
  }
}

abstract class Family<C> {
  protected readonly children: Children<C>

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registry: Registry,
    make: (labels: Labels) => C,
  ) {
    this.children = new Children(labelNames, make)
    registry.registerMetric(this as never)
  }

  abstract readonly type: 'counter' | 'gauge' | 'histogram'

  /** The child of these label values (in labelNames order), created at its first use. */
  labels(...values: string[]): C {
    return this.children.get(values)
  }

  protected abstract values(): Value[]

  /** What prom-client's registry reads at scrape time. */
  get(): { name: string; help: string; type: string; values: Value[]; aggregator: 'sum' } {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: 'sum' }
  }
}

export interface CounterChild {
  labels: Labels
  value: number
}

/** Counters and gauges: one number per label set. */
class ValueFamily extends Family<CounterChild> {
  constructor(
    readonly type: 'counter' | 'gauge',
    name: string,
    help: string,
    labelNames: readonly string[],
    registry: Registry,
  ) {
    super(name, help, labelNames, registry, (labels) => ({ labels, value: 0 }))
  }

  protected values(): Value[] {
    return [...this.children.all].map((c) => ({ labels: c.labels, value: c.value }))
  }
}

export class FastCounter extends ValueFamily {
  constructor(name: string, help: string, labelNames: readonly string[], registry: Registry) {
    super('counter', name, help, labelNames, registry)
  }
}

export class FastGauge extends ValueFamily {
  constructor(name: string, help: string, labelNames: readonly string[], registry: Registry) {
    super('gauge', name, help, labelNames, registry)
  }

  remove(...values: string[]): void {
    this.children.delete(values)
  }
}

export class HistogramChild {
  /** Per bucket, not cumulative; the last is +Inf. */
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(
    readonly labels: Labels,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(v: number): void {
    const b = this.bounds
    let i = 0
    while (i < b.length && v > b[i]!) i++
    this.counts[i]!++
    this.sum += v
    this.count++
  }
}

export class FastHistogram extends Family<HistogramChild> {
  readonly type = 'histogram'

  constructor(name: string, help: string, labelNames: readonly string[], readonly buckets: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry, (labels) => new HistogramChild(labels, buckets))
  }

  protected values(): Value[] {
    const out: Value[] = []
    for (const c of this.children.all) {
      if (c.count === 0) continue // as prom-client: a series appears with its first observation
      let cumulative = 0
      this.buckets.forEach((le, i) => {
        cumulative += c.counts[i]!
        out.push({ labels: { le: String(le), ...c.labels }, value: cumulative, metricName: `${this.name}_bucket` })
      })
      out.push({ labels: { le: '+Inf', ...c.labels }, value: c.count, metricName: `${this.name}_bucket` })
      out.push({ labels: c.labels, value: c.sum, metricName: `${this.name}_sum` })
      out.push({ labels: c.labels, value: c.count, metricName: `${this.name}_count` })
    }
    return out
  }
}
