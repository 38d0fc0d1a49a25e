// Where the Redis-backed tests find Redis, and whether they must skip (DESIGN §1 `npm test`).
// test/run.mjs decides: a Redis answering at REDIS_URL, else a redis-server it started from PATH, else
// PORTCULLIS_TEST_NO_REDIS is set and these tests are reported as skipped — never as passed.

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** The redis-server binary for tests that start, stop and hang their own (run.mjs sets it from PATH). */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server'

/** Pass as `{ skip: redisSkip }` to every test that needs Redis: false, or the reason to skip. */
export const redisSkip: string | false = process.env.PORTCULLIS_TEST_NO_REDIS
  ? `no Redis: nothing answers at ${REDIS_URL} and no redis-server on PATH`
  : false
