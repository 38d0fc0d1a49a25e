// Throw-away Redis topologies for the state tests: a primary + replica + sentinels, and a three-master
// cluster, as redis-server children on free loopback ports in a temp dir. Every wait is bounded; stop() kills all.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server'

/** A reason to skip (reported as skipped, never as passed) when there is no redis-server to start. */
export const noRedisServer: string | false = spawnSync(REDIS_SERVER, ['--version'], { timeout: 5000 }).status === 0 ? false : `no ${REDIS_SERVER} on PATH`

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port
      s.close(() => resolve(p))
    })
  })
}

/** Polls `check` every 100 ms for at most `ms`; true once it held. */
export async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await Promise.resolve().then(check).catch(() => false)) return true
    await sleep(100)
  }
  return false
}

/** A short-lived admin connection for setting up and inspecting a server (never the gateway's). */
export async function adminCall<T>(port: number, run: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 1000, retryStrategy: () => null })
  r.on('error', () => {})
  try {
    await r.connect()
    return await run(r)
  } finally {
    r.disconnect()
  }
}

export class RedisProcess {
  #child: ChildProcess | undefined
  constructor(
    readonly port: number,
    readonly args: string[],
  ) {}

  async start(): Promise<void> {
    this.#child = spawn(REDIS_SERVER, this.args, { stdio: 'ignore' })
    const up = await until(() => adminCall(this.port, async (r) => (await r.ping()) === 'PONG'), 10_000)
    if (!up) throw new Error(`redis-server on ${this.port} did not answer`)
  }

  signal(sig: NodeJS.Signals): void {
    this.#child?.kill(sig)
  }

  async stop(): Promise<void> {
    const child = this.#child
    this.#child = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((r) => child.once('exit', r))
    child.kill('SIGCONT')
    child.kill('SIGKILL')
    await Promise.race([exited, sleep(5000)])
  }
}

function dataArgs(port: number, dir: string, extra: string[] = []): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--dbfilename', `dump-${port}.rdb`, ...extra]
}

export interface SentinelSet {
  primary: RedisProcess
  replica: RedisProcess
  sentinels: RedisProcess[]
  name: string
  /** The primary's port as the sentinels name it now. */
  primaryPort(): Promise<number | undefined>
  stop(): Promise<void>
}

/** A primary, one replica and three sentinels (quorum 2, down after 1 s), ready to fail over. */
export async function startSentinelSet(): Promise<SentinelSet> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-sentinel-'))
  const name = 'portcullis-test'
  const [pp, rp, ...sp] = await Promise.all(Array.from({ length: 5 }, () => freePort())) as [number, number, ...number[]]
  const primary = new RedisProcess(pp, dataArgs(pp, dir))
  const replica = new RedisProcess(rp, dataArgs(rp, dir, ['--replicaof', '127.0.0.1', String(pp)]))
  const sentinels = sp.map((port) => {
    const file = join(dir, `sentinel-${port}.conf`)
    writeFileSync(
      file,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${pp} 2`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 5000`,
        `sentinel parallel-syncs ${name} 1`,
        '',
      ].join('\n'),
    )
    return new RedisProcess(port, [file, '--sentinel'])
  })
  const all = [primary, replica, ...sentinels]
  const stop = async () => {
    await Promise.all(all.map((p) => p.stop()))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await primary.start()
    await replica.start()
    for (const s of sentinels) await s.start()
    const linked = await until(() => adminCall(rp, async (r) => (await r.info('replication')).includes('master_link_status:up')), 15_000)
    if (!linked) throw new Error('replica never synced')
    // Each sentinel must know the replica and the two other sentinels, or no failover can be agreed.
    const known = await until(async () => {
      for (const s of sentinels) {
        const info = await adminCall(s.port, (r) => r.call('SENTINEL', 'MASTER', name) as Promise<string[]>)
        const field = (k: string) => Number(info[info.indexOf(k) + 1])
        if (field('num-slaves') < 1 || field('num-other-sentinels') < 2) return false
      }
      return true
    }, 20_000)
    if (!known) throw new Error('sentinels never saw the replica and each other')
  } catch (err) {
    await stop()
    throw err
  }
  return {
    primary,
    replica,
    sentinels,
    name,
    primaryPort: async () => {
      for (const s of sentinels) {
        try {
          const addr = await adminCall(s.port, (r) => r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name) as Promise<[string, string] | null>)
          if (addr) return Number(addr[1])
        } catch {
          // that sentinel is not answering; ask the next
        }
      }
      return undefined
    },
    stop,
  }
}

export interface ClusterSet {
  masters: RedisProcess[]
  stop(): Promise<void>
}

/** Three masters owning a third of the slots each (contiguous, as `redis-cli --cluster create` assigns them). */
export async function startCluster(): Promise<ClusterSet> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-cluster-'))
  const ports = await Promise.all([freePort(), freePort(), freePort()])
  const masters = ports.map(
    (p) => new RedisProcess(p, dataArgs(p, dir, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${p}.conf`), '--cluster-node-timeout', '2000'])),
  )
  const stop = async () => {
    await Promise.all(masters.map((m) => m.stop()))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await Promise.all(masters.map((m) => m.start()))
    const ranges = [
      [0, 5460],
      [5461, 10922],
      [10923, 16383],
    ] as const
    for (let i = 0; i < 3; i++) await adminCall(ports[i]!, (r) => r.call('CLUSTER', 'ADDSLOTSRANGE', String(ranges[i]![0]), String(ranges[i]![1])))
    for (let i = 1; i < 3; i++) await adminCall(ports[0]!, (r) => r.call('CLUSTER', 'MEET', '127.0.0.1', String(ports[i])))
    const ok = await until(async () => {
      for (const p of ports) {
        const info = (await adminCall(p, (r) => r.call('CLUSTER', 'INFO'))) as string
        if (!info.includes('cluster_state:ok') || !info.includes('cluster_known_nodes:3')) return false
      }
      return true
    }, 20_000)
    if (!ok) throw new Error('cluster never reached cluster_state:ok')
  } catch (err) {
    await stop()
    throw err
  }
  return { masters, stop }
}

/** How many keys under `prefix` a server holds (SCAN, bounded; these servers are the test's own). */
export async function countKeys(port: number, prefix: string): Promise<number> {
  return adminCall(port, async (r) => {
    let cursor = '0'
    let n = 0
    for (let round = 0; round < 1000; round++) {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      n += keys.length
      cursor = next
      if (cursor === '0') break
    }
    return n
  })
}

/** Waits (bounded) for a gateway's /readyz to answer 200: a load balancer sends it nothing before. */
export function gatewayReady(adminUrl: string | undefined, ms = 20_000): Promise<boolean> {
  if (adminUrl === undefined) return Promise.resolve(false)
  return until(async () => (await fetch(adminUrl + '/readyz')).status === 200, ms)
}
