// Shared command-line handling: the config path default of DESIGN §1 and flag parsing.
import { parseArgs, type ParseArgsConfig } from 'node:util'

export function configPathFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.PORTCULLIS_CONFIG ?? './gateway.yaml'
}

export class UsageError extends Error {}

export interface ParsedArgs {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  values: Record<string, any>
  positionals: string[]
}

export function parse(argv: string[], options: NonNullable<ParseArgsConfig['options']>, allowPositionals = false): ParsedArgs {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true }) as ParsedArgs
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}
