#!/usr/bin/env node
// The `portcullis` command: dispatches to one module per subcommand (DESIGN §1). `--help` of every
// subcommand and `--version` are answered here, before the subcommand's module is loaded.
import { UsageError } from './args.js'
import { OVERVIEW, USAGES, wantsHelp } from './usage.js'
import { VERSION } from '../version.js'

type Command = { run(argv: string[]): Promise<number> }

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: () => import('./serve.js'),
  check: () => import('./check.js'),
  schema: () => import('./schema.js'),
  keygen: () => import('./keygen.js'),
  fingerprint: () => import('./fingerprint.js'),
  sign: () => import('./sign.js'),
  'derive-key': () => import('./derive-key.js'),
  mint: () => import('./mint.js'),
  join: () => import('./join.js'),
  ucan: () => import('./ucan.js'),
  report: () => import('./report.js'),
  version: async () => ({ run: version }),
}

async function version(): Promise<number> {
  process.stdout.write(`portcullis ${VERSION}\n`)
  return 0
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' && rest[0] ? USAGES[rest[0]] : undefined
    process.stdout.write(topic ?? OVERVIEW)
    return name ? 0 : 1
  }
  if (name === '--version' || name === '-V') return version()
  const load = COMMANDS[name]
  if (!load) {
    process.stderr.write(`portcullis: unknown command "${name}"\n${OVERVIEW}`)
    return 1
  }
  // A command without an entry in usage.ts (report) prints its own help.
  const help = USAGES[name]
  if (wantsHelp(rest) && help) {
    process.stdout.write(help)
    return 0
  }
  try {
    return await (await load()).run(rest)
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`portcullis ${name}: ${err.message}\n`)
      return 2
    }
    process.stderr.write(`portcullis ${name}: ${(err as Error).message}\n`)
    return 1
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
  if (process.argv[2] !== 'serve') return
  process.exit(code)
})
