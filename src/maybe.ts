// A value now or later. The request path awaits only what is really pending: every `await` (and every
// `async` function) costs a promise and a microtask turn, and a bearer request's steps are all synchronous
// in memory mode — the store, the digest lookup, the roles. See docs/performance.md.

export type MaybePromise<T> = T | Promise<T>

/** `f(value)` at once when `value` is here, after it settles otherwise (a rejection passes through). */
export function then<T, U>(value: MaybePromise<T>, f: (v: T) => MaybePromise<U>): MaybePromise<U> {
  return value instanceof Promise ? value.then(f) : f(value)
}
