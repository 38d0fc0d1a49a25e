// The `state:` section of gateway.yaml: its schema part and its compilation into the options of createState.
// Checks the Redis shape (url | sentinels + name | cluster) at load; never prints the url (it may hold a password).
import { Type } from '@sinclair/typebox'
import { storeErrorPolicy, type OnStoreError } from '../state/resilient.js'
import type { RedisNode, RedisTarget } from '../state/redis.js'
import { defaulted, Duration, Strict, type Filled } from './schema-parts.js'
import { durationMs, type CompileContext } from './types.js'
import { isReference, resolveReference } from './secrets.js'

const Mode = Type.Union([Type.Literal('deny'), Type.Literal('allow'), Type.Literal('local')])
const Node = Type.String({ minLength: 3, description: 'host:port or redis://host:port' })

export const StateSchema = Type.Object(
  {
    store: Type.Optional(defaulted(Type.Union([Type.Literal('memory'), Type.Literal('redis')], { default: 'memory' }))),
    redis: Type.Optional(
      Type.Object(
        {
          url: Type.Optional(Type.String({ minLength: 1, description: 'redis[s]://[user:password@]host:port, or a ${env:}/${file:} reference; with sentinels or cluster only its user, password and rediss:// are used' })),
          sentinels: Type.Optional(Type.Array(Node, { minItems: 1, description: 'Redis Sentinel addresses (host:port)' })),
          name: Type.Optional(Type.String({ minLength: 1, description: 'the primary name the sentinels monitor' })),
          cluster: Type.Optional(Type.Array(Node, { minItems: 1, description: 'Redis Cluster seed nodes (one is enough)' })),
          prefix: Type.Optional(defaulted(Type.String({ default: 'portcullis:' }))),
        },
        Strict,
      ),
    ),
    timeout: Type.Optional(Duration('1s')),
    onStoreError: Type.Optional(
      Type.Union([Mode, Type.Object({ replay: Type.Optional(Mode), rateLimit: Type.Optional(Mode) }, Strict)], {
        description: 'deny | allow | local, or { replay, rateLimit }; default { replay: deny, rateLimit: local }',
      }),
    ),
    replicas: Type.Optional(defaulted(Type.Integer({ minimum: 1, default: 1 }))),
    maxEntries: Type.Optional(defaulted(Type.Integer({ minimum: 1, default: 1000000 }))),
  },
  Strict,
)

export type StateFile = Filled<typeof StateSchema>

export interface CompiledState {
  store: 'memory' | 'redis'
  redis?: RedisTarget & { prefix: string }
  timeoutMs: number
  onStoreError: OnStoreError
  replicas: number
  maxEntries: number
}

/** `host:port`, `[v6]:port`, `redis://host:port` or `rediss://host:port` (credentials belong in `url`). */
export function parseRedisNode(value: string): RedisNode | undefined {
  const m = /^(?:rediss?:\/\/)?(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})\/?$/.exec(value)
  if (!m) return undefined
  const port = Number(m[3])
  if (port < 1 || port > 65535) return undefined
  return { host: m[1] ?? m[2]!, port }
}

function nodes(ctx: CompileContext, key: 'sentinels' | 'cluster', list: string[] | undefined): RedisNode[] | undefined {
  if (list === undefined) return undefined
  const out: RedisNode[] = []
  list.forEach((entry, i) => {
    const node = parseRedisNode(entry)
    if (node === undefined) ctx.error(['state', 'redis', key, i], `must be host:port${key === 'cluster' ? ' or redis://host:port' : ''} (credentials go in state.redis.url)`)
    else out.push(node)
  })
  return out
}

export function compileState(state: StateFile, ctx: CompileContext, env: NodeJS.ProcessEnv): CompiledState {
  let redis: CompiledState['redis']
  const spec = state.redis
  if (spec) {
    let url: string | undefined
    if (spec.url !== undefined) {
      const r = isReference(spec.url) ? resolveReference(spec.url, env) : { ok: true as const, value: spec.url }
      if (!r.ok) ctx.error(['state', 'redis', 'url'], r.message)
      else if (!/^rediss?:\/\//.test(r.value) || !URL.canParse(r.value)) ctx.error(['state', 'redis', 'url'], 'must be a redis:// or rediss:// URL')
      else url = r.value
    }
    const prefix = spec.prefix
    const sentinels = nodes(ctx, 'sentinels', spec.sentinels)
    const cluster = nodes(ctx, 'cluster', spec.cluster)
    let ok = true
    const problem = (key: string, message: string) => {
      ctx.error(['state', 'redis', key], message)
      ok = false
    }
    if (spec.sentinels && spec.cluster) problem('cluster', 'sentinels and cluster are two different shapes: give one')
    else if (spec.sentinels && spec.name === undefined) problem('sentinels', 'sentinels need name (the primary the sentinels monitor)')
    else if (spec.name !== undefined && !spec.sentinels) problem('name', 'name is the Sentinel primary name: it needs sentinels')
    else if (!spec.sentinels && !spec.cluster && spec.url === undefined) problem('url', 'state.redis needs url, sentinels + name, or cluster')
    // Cluster hashes the first {…} of a key: one in the prefix would put every key on one node.
    if (spec.cluster && /[{}]/.test(prefix)) problem('prefix', 'must not contain { or } with cluster (hash tags)')
    if (ok && (spec.url === undefined || url !== undefined)) {
      redis = {
        prefix,
        ...(url !== undefined ? { url } : {}),
        ...(sentinels ? { sentinels, name: spec.name! } : {}),
        ...(cluster ? { cluster } : {}),
      }
    }
  }
  if (state.store === 'redis' && !spec) ctx.error(['state', 'store'], 'store: redis needs state.redis (url, sentinels + name, or cluster)')
  return {
    store: state.store,
    ...(redis ? { redis } : {}),
    timeoutMs: durationMs(state.timeout),
    onStoreError: storeErrorPolicy(state.onStoreError),
    replicas: state.replicas,
    maxEntries: state.maxEntries,
  }
}
