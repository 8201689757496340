import type { Redis } from 'ioredis';

/**
 * Closes a connection politely (QUIT) but never waits long for it: a connection that retries
 * forever would otherwise queue the QUIT until Redis came back, and shutdown would hang.
 */
export async function closeRedis(r: Redis, waitMs = 1000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    r.quit().catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, waitMs);
    }),
  ]);
  clearTimeout(timer);
  r.disconnect();
}
