// One running gateway: config, state, the proxy listener and (later) the admin listener and
// reload watcher, started and stopped together. Used by `serve`, the demo and the tests.
import type { Logger } from 'pino'
import type { Gateway } from './config/compile.js'
import { createState, type State } from './state/index.js'
import { startGatewayServer, type GatewayServer } from './server.js'

export interface RunningGateway {
  url: string
  server: GatewayServer
  state: State
  logger: Logger
  close(): Promise<void>
}

export async function startGateway(o: { file: string; gateway: Gateway; logger: Logger }): Promise<RunningGateway> {
  const state = await createState(o.gateway.state)
  const server = await startGatewayServer({ gateway: o.gateway, state, logger: o.logger })
  o.logger.info({ url: server.url, config: o.file }, 'listening')
  return {
    url: server.url,
    server,
    state,
    logger: o.logger,
    async close() {
      await server.close()
      await state.close()
      o.logger.info('stopped')
      await new Promise<void>((r) => o.logger.flush(() => r()))
    },
  }
}
