// Built-in methods that authenticate a configured identity from something other than a static
// secret (mTLS certificates). Each entry compiles the whole config into one Authenticator, or none.
import type { GatewayConfigFile } from '../config/schema.js'
import type { CompileContext } from '../config/types.js'
import type { Authenticator } from './types.js'
import { createMtlsMethod } from './mtls.js'

export type IdentityMethodFactory = (config: GatewayConfigFile, ctx: CompileContext) => Authenticator | undefined

export const IDENTITY_METHOD_FACTORIES: Record<string, IdentityMethodFactory> = {}

IDENTITY_METHOD_FACTORIES['mtls'] = createMtlsMethod
