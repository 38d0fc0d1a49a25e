// A value now or later. The request path awaits only what is really pending: every `await` (and every
// `async` function) costs a promise and a microtask turn, and a bearer request's steps are all synchronous
// in memory mode — the store, the digest lookup, the roles. See docs/performance.md.

export type MaybePromise<T> = T | PromiseLike<T>

/**
 * Is the value still to come? Any thenable counts, as `await` counts it — a promise of another realm
 * (node:vm, a worker) fails `instanceof Promise` and would otherwise be taken for the answer itself.
 * No value the steps answer with (a Denial, an AuthResult, a hit) has a `then`.
 */
export function isPending<T>(value: MaybePromise<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function'
}

/** `f(value)` at once when `value` is here, after it settles otherwise (a rejection passes through). */
export function then<T, U>(value: MaybePromise<T>, f: (v: T) => MaybePromise<U>): MaybePromise<U> {
  // Promise.resolve adopts any thenable as a native promise (a native one is returned as is).
  return isPending(value) ? Promise.resolve(value).then(f) : f(value)
}

/** `call()`, with a synchronous throw turned into a rejected promise (only then is a promise made). */
export function settled<T>(call: () => MaybePromise<T>): MaybePromise<T> {
  try {
    return call()
  } catch (err) {
    return Promise.reject(err)
  }
}
