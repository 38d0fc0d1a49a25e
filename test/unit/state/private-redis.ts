// A throw-away redis-server child on 127.0.0.1 for tests that stop, hang and restart Redis.
// Never persists anything; every wait is bounded.

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { REDIS_SERVER } from '../../redis-env.js'

const START_TIMEOUT_MS = 5000

export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export class PrivateRedis {
  readonly port: number
  readonly #extraArgs: string[]
  #child: ChildProcess | undefined

  constructor(port: number, extraArgs: string[] = []) {
    this.port = port
    this.#extraArgs = extraArgs
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async start(): Promise<void> {
    // a file name no one has, so a restart never loads someone's dump: every start is an empty server
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
    args.push('--dir', tmpdir(), '--dbfilename', `portcullis-test-${process.pid}-${this.port}.rdb`, ...this.#extraArgs)
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#child = child
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`redis-server not ready in ${START_TIMEOUT_MS}ms: ${output}`)), START_TIMEOUT_MS)
      const fail = (err: Error) => {
        clearTimeout(timer)
        reject(err)
      }
      child.once('error', fail)
      child.once('exit', (code) => fail(new Error(`redis-server exited (${code}): ${output}`)))
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer)
          child.removeAllListeners('exit')
          resolve()
        }
      })
    })
  }

  /** SIGSTOP: the socket stays open but nothing is answered (a hung Redis). */
  pause(): void {
    this.#child?.kill('SIGSTOP')
  }

  resume(): void {
    this.#child?.kill('SIGCONT')
  }

  async stop(): Promise<void> {
    const child = this.#child
    this.#child = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGCONT')
    child.kill('SIGKILL')
    await exited
  }
}
