// The building blocks of gateway.yaml's schema, shared by schema.ts and by the auth methods that declare
// their own part of it (auth/methods.ts), and `Filled<…>`: the type of a part once the loader has put in
// every default the schema declares. Declarations only; nothing here reads a file or a secret.
import { Type, type Static, type TArray, type TInteger, type TObject, type TOptional, type TProperties, type TRecord, type TSchema, type TString, type TUnion } from '@sinclair/typebox'

export const Strict = { additionalProperties: false } as const

/** A schema part that declares a `default`: the loader fills it in, so `Filled` makes the key required. */
export interface HasDefault {
  default: unknown
}

/** Marks a part built with `{ default: … }` so its type says so; throws (at import) if it has none. */
export function defaulted<T extends TSchema>(schema: T): T & HasDefault {
  if (schema.default === undefined) throw new Error('defaulted(): this schema part declares no default')
  return schema as T & HasDefault
}

type Evaluate<T> = { [K in keyof T]: T[K] } & {}

/**
 * The value of a schema part as the loader hands it on (load.ts): like TypeBox's `Static`, except that an
 * optional key whose part declares a default (`defaulted`, `Duration('5m')`…) is present.
 */
export type Filled<T extends TSchema> =
  T extends TObject<infer P> ? FilledObject<P>
  : T extends TArray<infer I> ? Filled<I>[]
  : T extends TRecord<TSchema, infer V> ? Record<string, Filled<V>>
  : T extends TUnion<infer U> ? Filled<U[number]>
  : Static<T>

export type FilledObject<P extends TProperties> = Evaluate<
  { [K in keyof P as P[K] extends TOptional<TSchema> ? (P[K] extends HasDefault ? K : never) : K]: Filled<P[K]> } & {
    [K in keyof P as P[K] extends TOptional<TSchema> ? (P[K] extends HasDefault ? never : K) : never]?: Filled<P[K]>
  }
>

/** "5m" or 300, "1mb" or 1048576: a unit string or a plain number. */
type TStringOrInteger = TUnion<[TString, TInteger]>

/** "500ms", "10s", "5m", "1h", "1d", or a whole number of seconds. */
export function Duration(): TStringOrInteger
export function Duration(def: string): TStringOrInteger & HasDefault
export function Duration(def?: string): TStringOrInteger {
  return Type.Union([Type.String({ pattern: '^[0-9]+(ms|s|m|h|d)$' }), Type.Integer({ minimum: 0 })], {
    description: 'duration such as 500ms, 10s, 5m, 1h',
    ...(def === undefined ? {} : { default: def }),
  })
}

/** "512b", "64kb", "1mb", "1gb", or a whole number of bytes. */
export function Size(): TStringOrInteger
export function Size(def: string): TStringOrInteger & HasDefault
export function Size(def?: string): TStringOrInteger {
  return Type.Union([Type.String({ pattern: '^[0-9]+(b|kb|mb|gb)$' }), Type.Integer({ minimum: 0 })], {
    description: 'size such as 64kb, 1mb',
    ...(def === undefined ? {} : { default: def }),
  })
}

/** `host:port`. */
export function HostPort(): TString
export function HostPort(def: string): TString & HasDefault
export function HostPort(def?: string): TString {
  return Type.String({ minLength: 3, description: 'host:port', ...(def === undefined ? {} : { default: def }) })
}

/** A secret reference `${env:NAME}` / `${file:/path}`; checked (never printed) by secrets.ts. */
export const Secret = Type.String({ description: 'secret reference ${env:NAME} or ${file:/path}' })
export const Roles = Type.Array(Type.String({ minLength: 1 }))
/** DESIGN §4.9: attributes of an identity or of every signer of a scheme; a route's `{role, claims}` may require them. */
export const ClaimScalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()])
export const Claims = Type.Record(Type.String({ minLength: 1 }), Type.Union([ClaimScalar, Type.Array(ClaimScalar)]), { description: 'claim name -> value' })
