import type { Redis } from 'ioredis';

/** A Redis URL fit for a log line or an error: its password replaced. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return 'an unparsable URL';
  }
}

export class RedisStartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisStartupError';
  }
}

/** Answers that retrying will not change: a wrong password, or a server that wants one. */
const REFUSED = /WRONGPASS|NOAUTH|invalid password|ERR AUTH/i;

/**
 * Connects a lazily created client, waiting up to `waitMs` for Redis to come up (a server and its
 * Redis started together, as docker compose does), instead of failing at the first refused
 * connection. ioredis keeps reconnecting after a failed first attempt; this waits for its `ready`.
 * Past the wait, or on an answer that waiting will not change, it throws an error naming REDIS_URL.
 */
export async function connectWaiting(
  r: Redis,
  opts: { url: string; waitMs: number; onWait?: (reason: string) => void },
): Promise<void> {
  let last: Error | undefined;
  try {
    await r.connect();
    return;
  } catch (err) {
    last = err as Error;
  }
  const fail = (why: string) =>
    new RedisStartupError(
      `Cannot reach Redis at ${redactRedisUrl(opts.url)} (REDIS_URL)${why}: ${last?.message ?? 'no answer'}. Check that Redis runs and that REDIS_URL names it as this process reaches it (in docker compose, redis://redis:6379).`,
    );
  if (opts.waitMs <= 0 || REFUSED.test(last.message)) {
    r.disconnect();
    throw fail('');
  }
  opts.onWait?.(last.message);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      last = err;
      if (REFUSED.test(err.message)) done(fail(''));
    };
    const onReady = () => done();
    const timer = setTimeout(() => done(fail(` within ${Math.round(opts.waitMs / 1000)} s`)), opts.waitMs);
    const done = (err?: Error) => {
      clearTimeout(timer);
      r.off('error', onError);
      r.off('ready', onReady);
      if (err) {
        r.disconnect();
        reject(err);
      } else resolve();
    };
    r.on('error', onError);
    r.on('ready', onReady);
    if (r.status === 'ready') done();
  });
}
