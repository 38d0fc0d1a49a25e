// Built-in methods that authenticate a configured identity from something other than a static
// secret (mTLS certificates). Each entry compiles the whole config into one Authenticator, or none.
import type { IdentityMethodFactory } from './types.js'
import { createMtlsMethod } from './mtls.js'


export const IDENTITY_METHOD_FACTORIES: Record<string, IdentityMethodFactory> = {}

IDENTITY_METHOD_FACTORIES['mtls'] = createMtlsMethod
