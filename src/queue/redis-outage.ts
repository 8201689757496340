import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * Says once that Redis is unreachable and once that it is back, however many connections a
 * process holds and however often each retries: during an outage every connection (ours, BullMQ's)
 * fails every few hundred milliseconds, and a line per failure would bury everything else.
 */
export class RedisOutageLog {
  private downSince: number | undefined;

  constructor(private readonly logger: Logger) {}

  /** Follows a connection: its errors start an outage, its return to ready ends it. */
  watch(conn: Redis): void {
    conn.on('error', (err: Error) => this.lost(err));
    conn.on('ready', () => this.back());
  }

  get down(): boolean {
    return this.downSince !== undefined;
  }

  lost(err: Error): void {
    if (this.downSince !== undefined) return;
    this.downSince = Date.now();
    this.logger.error(
      // Not under `err`: pino would print it as an Error with its stack.
      { reason: err.message, code: (err as NodeJS.ErrnoException).code },
      'redis unreachable: requests are answered 503 and workers wait until it is back',
    );
  }

  back(): void {
    if (this.downSince === undefined) return;
    const downMs = Date.now() - this.downSince;
    this.downSince = undefined;
    this.logger.info({ down_ms: downMs }, 'redis reachable again');
  }
}

/**
 * Whether an error only says the connection to Redis is gone (ioredis, or BullMQ passing it on):
 * such errors belong to the outage, logged once, not to the component that met it.
 */
export function isRedisConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  if (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|EAI_AGAIN)$/.test(code)
  )
    return true;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|Stream isn't writeable|connect ECONNREFUSED|read ECONNRESET/.test(err.message)
  );
}
