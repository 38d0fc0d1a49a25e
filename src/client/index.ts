// `portcullis/client`: sign requests for the gateway (worker-v1, rfc9421) from Node workers.
// Re-exports only. The signing functions are pure; the dispatcher and join send requests.
export { signWorkerV1, type WorkerV1SignOptions, type WorkerV1Headers } from './worker-v1.js'
export {
  signRfc9421,
  signRequestParts,
  type Rfc9421SignOptions,
  type Rfc9421Credentials,
  type Rfc9421Headers,
  type RequestParts,
  type HeaderInput,
} from './rfc9421.js'
export { signingInterceptor, createSigningDispatcher, type SigningOptions } from './dispatcher.js'
export { computeContentDigest, verifyContentDigest, type DigestAlgorithm, type DigestCheck } from '../auth/content-digest.js'
export { deriveKey } from '../auth/derive.js'
export { buildSignatureBase, type SignedMessage } from '../auth/signature-base.js'
export { verifyAssertion, AssertionError, type VerifyAssertionOptions, type AssertionClaims } from './assertion.js'
export { joinGateway, joinUrl, JoinError, type JoinOptions } from './join.js'
export { trustingDispatcher, certificateFailure } from './tls.js'
export { ucanDid, ucanDelegate, ucanDelegation, ucanInvocation, type UcanDelegateOptions, type UcanInvokeOptions } from './ucan.js'
