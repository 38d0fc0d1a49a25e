// `portcullis fingerprint [TOKEN] [--full]`: the fingerprint audit lines show, or the `sha256:` form a config may store.
import { createInterface } from 'node:readline'
import { fullFingerprint, tokenFingerprint } from '../auth/credential.js'
import { parse, UsageError } from './args.js'

async function firstLine(): Promise<string | undefined> {
  const rl = createInterface({ input: process.stdin })
  for await (const line of rl) {
    rl.close()
    return line
  }
  return undefined
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { full: { type: 'boolean' } }, true)
  if (positionals.length > 1) throw new UsageError('fingerprint takes at most one TOKEN')
  const token = positionals[0] ?? (await firstLine())?.replace(/\r$/, '')
  if (!token) throw new UsageError('no token given (argument or first line of stdin)')
  process.stdout.write((values.full ? fullFingerprint(token) : tokenFingerprint(token)) + '\n')
  return 0
}
