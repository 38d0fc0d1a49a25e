// `--cacert FILE` of the commands that send requests (sign --send, join): the private CA to trust.
// Reads only the named file; a missing or unreadable one is a plain error naming the file.
import { readFile } from 'node:fs/promises'
import type { Agent } from 'undici'
import { trustingDispatcher } from '../client/tls.js'

export class CaFileError extends Error {}

/** An undici dispatcher trusting FILE's certificates, or undefined without --cacert (the system's CAs). */
export async function dispatcherFor(file: string | undefined): Promise<Agent | undefined> {
  if (file === undefined) return undefined
  let pem: Buffer
  try {
    pem = await readFile(file)
  } catch (err) {
    throw new CaFileError(`cannot read --cacert ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`)
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new CaFileError(`--cacert ${file} holds no PEM certificate`)
  return trustingDispatcher(pem)
}
