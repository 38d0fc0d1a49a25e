// `portcullis join --url URL --key-id ID --psk-env VAR [--path PATH]`: the worker side of DESIGN §4.7.
// Prints only the worker's key (64 hex); reads the PSK only from the named environment variable.
import { KEY_ID_PATTERN } from '../auth/rfc9421.js'
import { DEFAULT_JOIN_PATH, joinGateway, JoinError } from '../client/join.js'
import { describeSendFailure } from '../client/tls.js'
import { parse, UsageError } from './args.js'
import { CaFileError, dispatcherFor } from './cacert.js'
import { USAGES } from './usage.js'

const USAGE = USAGES.join!.trimEnd()

export async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    url: { type: 'string' },
    'key-id': { type: 'string' },
    'psk-env': { type: 'string' },
    path: { type: 'string' },
    cacert: { type: 'string' },
  })
  const url = values.url as string | undefined
  const keyId = values['key-id'] as string | undefined
  const envName = values['psk-env'] as string | undefined
  if (url === undefined || keyId === undefined || envName === undefined) throw new UsageError(USAGE)
  if (!KEY_ID_PATTERN.test(keyId)) throw new UsageError('--key-id must be 1 to 256 printable ASCII characters without spaces')
  const path = (values.path as string | undefined) ?? DEFAULT_JOIN_PATH
  if (!path.startsWith('/')) throw new UsageError('--path must start with /')
  try {
    const u = new URL(url)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error()
  } catch {
    throw new UsageError('--url must be the gateway\'s http:// or https:// base URL')
  }
  const psk = process.env[envName]
  if (psk === undefined || psk === '') {
    process.stderr.write(`join: environment variable ${envName} is not set\n`)
    return 1
  }
  let dispatcher
  try {
    dispatcher = await dispatcherFor(values.cacert as string | undefined)
  } catch (err) {
    if (!(err instanceof CaFileError)) throw err
    process.stderr.write(`join: ${err.message}\n`)
    return 1
  }
  try {
    process.stdout.write((await joinGateway({ url, keyId, psk, path, ...(dispatcher ? { dispatcher } : {}) })) + '\n')
    return 0
  } catch (err) {
    process.stderr.write(`join: ${err instanceof JoinError ? err.message : describeSendFailure(err, url)}\n`)
    return 1
  } finally {
    await dispatcher?.close()
  }
}
