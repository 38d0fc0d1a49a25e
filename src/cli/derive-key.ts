// `portcullis derive-key --master-env VAR --key-id ID`: the key `derive` (DESIGN §4.4) gives that key id.
// Prints only the derived key; never prints or logs the master.
import { deriveKey } from '../auth/derive.js'
import { KEY_ID_PATTERN } from '../auth/rfc9421.js'
import { parse, UsageError } from './args.js'

/** The gateway refuses a shorter `derive` master (DESIGN §2), so a key derived from one would never verify. */
const MIN_SECRET_LENGTH = 32

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { 'master-env': { type: 'string' }, 'key-id': { type: 'string' } })
  const envName = values['master-env']
  const keyId = values['key-id']
  if (envName === undefined || keyId === undefined) throw new UsageError('usage: portcullis derive-key --master-env VAR --key-id ID')
  if (!KEY_ID_PATTERN.test(keyId)) throw new UsageError('--key-id must be 1 to 256 printable ASCII characters without spaces')
  const master = process.env[envName]
  if (master === undefined || master === '') {
    process.stderr.write(`derive-key: environment variable ${envName} is not set\n`)
    return 1
  }
  if (master.length < MIN_SECRET_LENGTH) {
    process.stderr.write(`derive-key: ${envName} is shorter than ${MIN_SECRET_LENGTH} characters (the gateway would refuse it)\n`)
    return 1
  }
  process.stdout.write(deriveKey(master, keyId) + '\n')
  return 0
}
