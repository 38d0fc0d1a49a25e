// `portcullis keygen`: a new random secret (default 32 bytes, hex — like `openssl rand -hex 32`).
// Never prints a secret the gateway would refuse: the text is at least MIN_SECRET_LENGTH characters.
import { randomBytes } from 'node:crypto'
import { parse, UsageError } from './args.js'

/** The gateway refuses a resolved secret shorter than this (DESIGN §2). */
export const MIN_SECRET_LENGTH = 32
const MAX_BYTES = 1024

/** Characters of `bytes` random bytes as text: hex 2 per byte, base64url without padding 4 per 3. */
export function encodedLength(bytes: number, encoding: 'hex' | 'base64url'): number {
  return encoding === 'hex' ? bytes * 2 : Math.ceil((bytes * 4) / 3)
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { bytes: { type: 'string' }, encoding: { type: 'string' } })
  const encoding = values.encoding ?? 'hex'
  if (encoding !== 'hex' && encoding !== 'base64url') throw new UsageError('--encoding must be hex or base64url')
  const bytes = values.bytes === undefined ? 32 : /^[0-9]+$/.test(values.bytes) ? Number(values.bytes) : NaN
  let least = 1
  while (encodedLength(least, encoding) < MIN_SECRET_LENGTH) least++
  if (!Number.isInteger(bytes) || bytes < least || bytes > MAX_BYTES) {
    throw new UsageError(
      `--bytes must be a whole number from ${least} to ${MAX_BYTES} for ${encoding}: the secret must be at least ${MIN_SECRET_LENGTH} characters` +
        (Number.isInteger(bytes) && bytes < least ? ` (${bytes} bytes ${encoding} is ${encodedLength(bytes, encoding)})` : ''),
    )
  }
  process.stdout.write(randomBytes(bytes).toString(encoding) + '\n')
  return 0
}
