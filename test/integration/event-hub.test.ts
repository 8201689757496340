import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventHub } from '../../src/events/event-hub.js';
import type { StoredEvent } from '../../src/events/types.js';
import { startRedis, type TestRedis } from '../support/redis.js';

// The shared reader on a real Redis: the cases a whole server rarely shows (a stream that gets its
// first follower while the reader is blocked on others, a follower too slow for the live queue).
let redis: TestRedis;
let conn: Redis;

beforeAll(async () => {
  redis = await startRedis();
  conn = new Redis(redis.url);
});
afterAll(async () => {
  conn?.disconnect();
  await redis?.stop();
});

const add = (key: string, type: string, n: number) =>
  conn.xadd(key, '*', 'type', type, 'data', JSON.stringify({ n }), 'ts', String(Date.now()));

async function collect(gen: AsyncGenerator<StoredEvent>, into: StoredEvent[]): Promise<void> {
  for await (const ev of gen) into.push(ev);
}

describe('EventHub', () => {
  it('a stream followed while the reader blocks on another gets its events at once, not after the block', async () => {
    // A block far longer than the test: only cutting the read short delivers in time.
    const hub = new EventHub(conn, { maxFollowers: 10, blockMs: 60_000 });
    const stop = new AbortController();
    const a: StoredEvent[] = [];
    const b: StoredEvent[] = [];
    const followA = collect(hub.follow('hub:a', '0', stop.signal), a);
    await add('hub:a', 'log', 1);
    await expect.poll(() => a.length, { timeout: 2000 }).toBe(1);
    // The reader is now blocked on hub:a alone.
    const followB = collect(hub.follow('hub:b', '0', stop.signal), b);
    await new Promise((r) => setTimeout(r, 50));
    await add('hub:b', 'log', 2);
    await expect.poll(() => b.length, { timeout: 2000, interval: 20 }).toBe(1);
    await add('hub:b', 'run.completed', 3);
    await followB;
    expect(b.map((e) => e.data)).toEqual([{ n: 2 }, { n: 3 }]);
    stop.abort();
    await followA;
    await hub.close();
  });

  it('a follower that does not keep up is switched to reading Redis itself and misses nothing', async () => {
    const hub = new EventHub(conn, { maxFollowers: 10, blockMs: 1000, queueMax: 5 });
    const stop = new AbortController();
    const gen = hub.follow('hub:slow', '0', stop.signal);
    await add('hub:slow', 'log', 0);
    const got: StoredEvent[] = [(await gen.next()).value as StoredEvent];
    // While the follower takes nothing, 200 events pass through its queue of 5.
    for (let i = 1; i < 200; i++) await add('hub:slow', 'log', i);
    await add('hub:slow', 'run.completed', 200);
    await new Promise((r) => setTimeout(r, 200));
    await collect(gen, got);
    expect(got.map((e) => (e.data as unknown as { n: number }).n)).toEqual(
      Array.from({ length: 201 }, (_, i) => i),
    );
    await hub.close();
  });

  it('refuses a follower past its maximum with a 503 that names API_MAX_FOLLOWERS', async () => {
    const hub = new EventHub(conn, { maxFollowers: 1 });
    const stop = new AbortController();
    const one = hub.follow('hub:max', '0', stop.signal);
    const pending = one.next();
    await expect.poll(() => hub.followers).toBe(1);
    const two = hub.follow('hub:max', '0', stop.signal);
    await expect(two.next()).rejects.toMatchObject({ status: 503, code: 'too_many_followers' });
    stop.abort();
    await pending;
    expect(hub.followers).toBe(0);
    await hub.close();
  });
});
