import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { connectWaiting, RedisStartupError } from '../../src/queue/redis-wait.js';
import { freePort, startRedis, type TestRedis } from '../support/redis.js';

// A process started beside its Redis (docker compose starts them together) waits for it instead
// of exiting on "Connection is closed"; past its wait it names REDIS_URL. A real redis-server.
let redis: TestRedis | undefined;
let client: Redis | undefined;
afterEach(async () => {
  client?.disconnect();
  await redis?.stop();
  redis = client = undefined;
});

describe('connecting to Redis at start', () => {
  it('waits for a Redis that comes up a little later', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: false });
    client.on('error', () => undefined);
    const waits: string[] = [];
    const connecting = connectWaiting(client, { url, waitMs: 20_000, onWait: (r) => waits.push(r) });
    await new Promise((r) => setTimeout(r, 1500));
    redis = await startRedis({ port });
    await connecting;
    expect(await client.ping()).toBe('PONG');
    expect(waits).toHaveLength(1);
  });

  it('gives up after its wait with a message naming REDIS_URL, and hides the password', async () => {
    const port = await freePort();
    const url = `redis://:hunter2@127.0.0.1:${port}`;
    client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: false });
    client.on('error', () => undefined);
    const err = await connectWaiting(client, { url, waitMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisStartupError);
    const message = (err as Error).message;
    expect(message).toContain('REDIS_URL');
    expect(message).toContain(`127.0.0.1:${port}`);
    expect(message).toContain('within 1 s');
    expect(message).not.toContain('hunter2');
  });
});
