// `portcullis keygen`: a new random secret (default 32 bytes, hex — like `openssl rand -hex 32`).
import { randomBytes } from 'node:crypto'
import { parse, UsageError } from './args.js'

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { bytes: { type: 'string' }, encoding: { type: 'string' } })
  const bytes = values.bytes === undefined ? 32 : Number(values.bytes)
  if (!Number.isInteger(bytes) || bytes < 16 || bytes > 1024) throw new UsageError('--bytes must be a whole number from 16 to 1024')
  const encoding = values.encoding ?? 'hex'
  if (encoding !== 'hex' && encoding !== 'base64url') throw new UsageError('--encoding must be hex or base64url')
  process.stdout.write(randomBytes(bytes).toString(encoding) + '\n')
  return 0
}
