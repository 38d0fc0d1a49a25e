// Hot reload (DESIGN §7): SIGHUP, or a change to the config file (written in place or replaced by rename,
// as editors and Kubernetes ConfigMaps do), re-reads it — a changed file only once it stayed the same for
// 1 s, so a write in progress is never read half-done. A new config replaces the old one only after it
// loaded completely (schema, compile, every secret and TLS file read afresh); a bad file leaves the old one serving.
// Logs one `config.reload` line per attempt; never logs a secret (findings name fields, not values).
import { readFile, stat, unwatchFile, watchFile, type Stats } from 'node:fs'
import type { Logger } from 'pino'
import type { Gateway, Listen } from './compile.js'
import { formatFinding, loadConfigText, type Finding } from './load.js'
import { lintFindings } from './lint.js'

export interface ConfigReloaderOptions {
  file: string
  logger: Logger
  /** The config serving now. */
  current(): Gateway
  /**
   * Put a validated config in service. Returns the keys that changed but only take effect on a restart
   * (e.g. `state.store`); the listeners' keys are checked here and never reach `apply` changed.
   */
  apply(next: Gateway): string[]
  /** Called once per attempt (the reload counter). */
  onResult?(result: 'ok' | 'error'): void
  /** How often the file is polled; polling follows renames and symlink swaps where inotify would not. */
  pollMs?: number
  /** Reload on SIGHUP (default true). */
  sighup?: boolean
  env?: NodeJS.ProcessEnv
}

export interface ConfigReloader {
  /** Re-read the file now; resolves with the outcome once it is applied or refused. */
  reload(trigger: string): Promise<'ok' | 'error' | 'unchanged'>
  close(): void
}

/**
 * A file changed in place is read only once it has stayed the same this long: a writer that pauses
 * mid-file (between a route and its `roles:`) may leave a valid but wrong half on disk.
 */
const SETTLE_MS = 1000

function sameListen(a: Listen | undefined, b: Listen | undefined): boolean {
  return a?.host === b?.host && a?.port === b?.port
}

/** What the listener was created with: TLS or not, and whether it asks for client certificates. */
function tlsShape(tls: Gateway['server']['tls']): 'none' | 'tls' | 'mtls' {
  return tls ? (tls.clientCa ? 'mtls' : 'tls') : 'none'
}

/**
 * Keys that need a new listener (server.listen, admin.listen, and server.tls turned on or off or
 * clientCa added or removed). `next` is changed to keep the running values, so the config in service
 * always describes the listeners that actually exist. New contents of the TLS files are not kept back:
 * `next.server.tls.secureContext` is for the running server's setSecureContext().
 */
export function keepListeners(current: Gateway, next: Gateway): string[] {
  const changed: string[] = []
  if (!sameListen(current.server.listen, next.server.listen)) changed.push('server.listen')
  if (tlsShape(current.server.tls) !== tlsShape(next.server.tls)) {
    changed.push('server.tls')
    if (current.server.tls) next.server.tls = current.server.tls
    else delete next.server.tls
  }
  if (!sameListen(current.admin?.listen, next.admin?.listen)) changed.push('admin.listen')
  next.server.listen = current.server.listen
  if (current.admin) next.admin = current.admin
  else delete next.admin
  return changed
}

function readText(file: string): Promise<{ ok: true; text: string } | { ok: false; code: string }> {
  return new Promise((resolve) => readFile(file, 'utf8', (err, text) => resolve(err ? { ok: false, code: err.code ?? 'unreadable' } : { ok: true, text })))
}

export function watchConfig(o: ConfigReloaderOptions): ConfigReloader {
  const { file, logger } = o
  let lastText: string | undefined
  let chain: Promise<unknown> = Promise.resolve()
  let closed = false

  const refuse = (trigger: string, errors: Finding[]) => {
    logger.error({ event: 'config.reload', result: 'error', trigger, config: file, errors: errors.map(formatFinding) }, 'config.reload')
    o.onResult?.('error')
    return 'error' as const
  }

  const attempt = async (trigger: string): Promise<'ok' | 'error' | 'unchanged'> => {
    const read = await readText(file)
    if (!read.ok) return refuse(trigger, [{ file, line: 1, col: 1, severity: 'error', message: `cannot read config file (${read.code})` }])
    // A poll that saw only a touch (or a rewrite with the same bytes) has nothing to do; SIGHUP always reloads,
    // because a `${file:…}` secret may have changed under an unchanged config.
    if (trigger === 'watch' && read.text === lastText) return 'unchanged'
    lastText = read.text
    const loaded = loadConfigText(read.text, file, o.env ?? process.env)
    if (!loaded.ok) return refuse(trigger, loaded.errors)
    let restart: string[]
    let warnings: Finding[]
    try {
      const next = loaded.gateway
      // Linted as written, before the running listeners are put back into it.
      warnings = [...loaded.warnings, ...lintFindings(next, loaded.position).filter((f) => f.severity === 'warning')]
      restart = keepListeners(o.current(), next)
      restart.push(...o.apply(next))
    } catch (err) {
      return refuse(trigger, [{ file, line: 1, col: 1, severity: 'error', message: `config could not be applied: ${(err as Error).message}` }])
    }
    const fields = {
      event: 'config.reload',
      result: 'ok',
      trigger,
      config: file,
      routes: loaded.gateway.routes.length,
      ...(warnings.length ? { warnings: warnings.map(formatFinding) } : {}),
    }
    if (restart.length) logger.warn({ ...fields, restartRequired: restart }, 'config.reload')
    else logger.info(fields, 'config.reload')
    o.onResult?.('ok')
    return 'ok'
  }

  const reload = (trigger: string) => {
    // One reload at a time, in arrival order: a slow read never lets an older file win over a newer one.
    // Whatever goes wrong inside an attempt is a refused reload, logged and counted, never a silent one.
    const guarded = (): Promise<'ok' | 'error' | 'unchanged'> =>
      attempt(trigger).catch((err: unknown) =>
        refuse(trigger, [{ file, line: 1, col: 1, severity: 'error', message: `config could not be loaded: ${(err as Error).message}` }]),
      )
    const run = chain.then(() => (closed ? ('unchanged' as const) : guarded()))
    chain = run.catch(() => undefined)
    return run
  }

  // Settling: the file is read once its modification (or a rename onto it) is SETTLE_MS old, or, for a
  // clock that disagrees with the file system's, once its stat has not changed for SETTLE_MS.
  let settle: NodeJS.Timeout | undefined
  let seen: { key: string; since: number } | undefined
  const settled = () => {
    settle = undefined
    stat(file, (err, st) => {
      if (closed || settle !== undefined) return
      if (err) return // gone for now (replaced, or deleted before being rewritten): the poll sees it return
      const key = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`
      const now = Date.now()
      if (seen?.key !== key) seen = { key, since: now }
      const quiet = Math.max(now - Math.max(st.mtimeMs, st.ctimeMs), now - seen.since)
      if (quiet >= SETTLE_MS) {
        seen = undefined
        void reload('watch')
      } else settle = setTimeout(settled, SETTLE_MS - quiet + 20)
    })
  }
  const onChange = (curr: Stats) => {
    if (curr.ino === 0 && curr.mtimeMs === 0) return // gone for now (deleted before being rewritten): wait for it
    clearTimeout(settle)
    settle = setTimeout(settled, 20)
  }
  watchFile(file, { interval: o.pollMs ?? 500, persistent: false }, onChange)

  const onHup = () => void reload('SIGHUP')
  if (o.sighup !== false) process.on('SIGHUP', onHup)

  return {
    reload,
    close() {
      closed = true
      clearTimeout(settle)
      unwatchFile(file, onChange)
      process.off('SIGHUP', onHup)
    },
  }
}
