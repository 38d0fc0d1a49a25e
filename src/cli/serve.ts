// `portcullis serve`: refuses to start on any config error (one FILE:LINE:COL line each on stderr),
// otherwise runs the gateway until SIGTERM/SIGINT, then drains in-flight requests and exits 0.
import { loadConfigFile, formatFinding } from '../config/load.js'
import { lintFindings } from '../config/lint.js'
import { createLogger } from '../observe/logger.js'
import { startGateway } from '../process.js'
import { configPathFrom, parse } from './args.js'

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } })
  if (values.help) {
    process.stdout.write('usage: portcullis serve [--config PATH]\n\nRuns the gateway. Config: --config, then $PORTCULLIS_CONFIG, then ./gateway.yaml.\nRefuses to start (exit 1, one FILE:LINE:COL line per problem on stderr) on any config error.\n')
    return 0
  }
  const file = configPathFrom(values.config)
  const result = await loadConfigFile(file)
  if (!result.ok) {
    for (const f of [...result.errors, ...result.warnings]) process.stderr.write(formatFinding(f) + '\n')
    return 1
  }
  // DESIGN §6: the same warnings as `check`, on the `listening` line (reloads put theirs on `config.reload`).
  const warnings = [...result.warnings, ...lintFindings(result.gateway, result.position).filter((f) => f.severity === 'warning')].map(formatFinding)
  const logger = createLogger()
  const gateway = await startGateway({ file, gateway: result.gateway, logger, warnings })
  return new Promise<number>((resolve) => {
    let stopping = false
    const stop = (signal: string) => {
      if (stopping) return
      stopping = true
      logger.info({ signal }, 'shutdown')
      gateway.close().then(
        () => resolve(0),
        () => resolve(0),
      )
      // A backstop: whatever close() might still wait on, exit soon after the grace.
      setTimeout(() => resolve(0), gateway.server.runtime.gateway.server.shutdownGraceMs + 3000).unref()
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
  })
}
