#!/usr/bin/env node
// The `portcullis` command: dispatches to one module per subcommand (DESIGN §1).
import { UsageError } from './args.js'

type Command = { run(argv: string[]): Promise<number> }

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: () => import('./serve.js'),
  check: () => import('./check.js'),
  keygen: () => import('./keygen.js'),
  fingerprint: () => import('./fingerprint.js'),
  sign: () => import('./sign.js'),
  'derive-key': () => import('./derive-key.js'),
  mint: () => import('./mint.js'),
  join: () => import('./join.js'),
  ucan: () => import('./ucan.js'),
}

const USAGE = `usage: portcullis <command> [options]

  serve [--config PATH]        run the gateway (config: --config, $PORTCULLIS_CONFIG, ./gateway.yaml)
  check [--config PATH]        validate the config, print the route table and lints
  keygen [--bytes N] [--encoding hex|base64url]
  fingerprint [TOKEN] [--full]
  sign --scheme worker-v1|rfc9421 ... URL [--send]
  derive-key --master-env VAR --key-id ID
  mint --scheme NAME --sub ID [--roles a,b] [--ttl 10m] [--key FILE] [--config PATH]
  join --url URL --key-id ID --psk-env VAR [--path PATH]
  ucan did|delegate|invoke ...  UCAN 1.0 keys, delegations and request-bound invocations
`

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE)
    return name ? 0 : 1
  }
  const load = COMMANDS[name]
  if (!load) {
    process.stderr.write(`portcullis: unknown command "${name}"\n${USAGE}`)
    return 1
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
