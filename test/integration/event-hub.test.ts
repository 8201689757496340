import { setMaxListeners } from 'node:events';
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

const numbers = (events: StoredEvent[]) => events.map((e) => (e.data as unknown as { n: number }).n);

/** How many times Redis has run `command` so far (INFO commandstats). */
async function commandCalls(command: string): Promise<number> {
  const info = (await conn.info('commandstats')) as string;
  const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info);
  return m ? Number(m[1]) : 0;
}

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

  it('five hundred followers joining at once while the stream is written each get every event once, in order, from one read', async () => {
    const hub = new EventHub(conn, { maxFollowers: 1000, blockMs: 1000 });
    for (let i = 0; i < 50; i++) await add('hub:many', 'log', i);
    const xranges = await commandCalls('xrange');
    const stop = new AbortController();
    setMaxListeners(0, stop.signal);
    const got = Array.from({ length: 500 }, () => [] as StoredEvent[]);
    const following = got.map((into) => collect(hub.follow('hub:many', '0', stop.signal), into));
    // Written while they join: each event reaches each follower once, by its catch-up or live.
    for (let i = 50; i < 100; i++) await add('hub:many', 'log', i);
    await add('hub:many', 'run.completed', 100);
    await Promise.all(following);
    const all = Array.from({ length: 101 }, (_, i) => i);
    for (const events of got) expect(numbers(events)).toEqual(all);
    // The 500 catch-up reads of the same start are one XRANGE (a later page or two at most).
    expect((await commandCalls('xrange')) - xranges).toBeLessThanOrEqual(3);
    expect(hub.followers).toBe(0);
    expect(hub.streams).toBe(0);
    await hub.close();
  });

  it('followers joining one by one while events are written, from the start or after a Last-Event-ID, miss none and repeat none', async () => {
    const hub = new EventHub(conn, { maxFollowers: 1000, blockMs: 1000 });
    const stop = new AbortController();
    setMaxListeners(0, stop.signal);
    const ids: string[] = [];
    const joined: { after: string; from: number; events: StoredEvent[]; done: Promise<void> }[] = [];
    for (let i = 0; i < 300; i++) {
      ids.push((await add('hub:joins', i === 299 ? 'run.completed' : 'log', i)) as string);
      if (i % 3 === 0 && i < 290) {
        // Every third event another follower comes: alternately from the start and resuming.
        const resume = joined.length % 2 === 1;
        const after = resume ? ids[ids.length - 1]! : '0';
        const events: StoredEvent[] = [];
        const done = collect(hub.follow('hub:joins', after, stop.signal), events);
        joined.push({ after, from: resume ? i + 1 : 0, events, done });
      }
      // Let the reader, the catch-up reads and the joins interleave with the writes.
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(joined.map((j) => j.done));
    for (const j of joined) {
      expect(numbers(j.events)).toEqual(Array.from({ length: 300 - j.from }, (_, k) => j.from + k));
    }
    await hub.close();
  });

  it('tells a follower when it has had everything so far and waits, not before', async () => {
    const hub = new EventHub(conn, { maxFollowers: 10 });
    await add('hub:wait', 'log', 1);
    await add('hub:wait', 'log', 2);
    const stop = new AbortController();
    const seen: string[] = [];
    const gen = hub.follow('hub:wait', '0', stop.signal, () => seen.push('wait'));
    const done = (async () => {
      for await (const ev of gen) seen.push(`event ${(ev.data as unknown as { n: number }).n}`);
    })();
    await expect.poll(() => seen, { timeout: 2000 }).toEqual(['event 1', 'event 2', 'wait']);
    await add('hub:wait', 'log', 3);
    await expect.poll(() => seen.length, { timeout: 2000 }).toBe(5);
    expect(seen.slice(3)).toEqual(['event 3', 'wait']);
    stop.abort();
    await done;
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
