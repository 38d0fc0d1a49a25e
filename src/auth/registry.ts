// Scheme types → the factory that compiles one `schemes:` entry into an Authenticator.
// Adding a signing or token scheme = one file exporting a factory + one line here.
import type { SchemeFactory } from './types.js'
import { createWorkerV1Scheme } from './worker-v1.js'
import { createRfc9421Scheme } from './rfc9421.js'
import { createJwtScheme } from './jwt.js'
import { createUcanScheme } from './ucan.js'


export const SCHEME_FACTORIES: Record<string, SchemeFactory> = {}

SCHEME_FACTORIES['worker-v1'] = createWorkerV1Scheme
SCHEME_FACTORIES['rfc9421'] = createRfc9421Scheme
SCHEME_FACTORIES['jwt'] = createJwtScheme
SCHEME_FACTORIES['ucan'] = createUcanScheme
