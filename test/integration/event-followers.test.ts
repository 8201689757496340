import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxSpec } from '../../src/sandbox/driver.js';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { claudeLines, promptOf, ScriptedDriver } from '../support/scripted-driver.js';
import { readSse } from '../support/sse.js';

// Many clients following runs' events through one API process: they share one Redis reader
// (src/events/event-hub.ts), so followers cost no Redis connection each, leave nothing behind, and
// past API_MAX_FOLLOWERS a new one is told to come back (503) instead of being accepted.
const RUNBOOK = '---\nagent: claude-code\n---\n# Hello\nWrite {{results_dir}}/hello.txt\n';
const SLOW = `${RUNBOOK}SLOW\n`;

const isSlow = (spec: SandboxSpec) => promptOf(spec).includes('SLOW');
const driver = new ScriptedDriver((spec) =>
  isSlow(spec) ? claudeLines({ steps: 20, delayMs: 100 }) : claudeLines({ steps: 3, delayMs: 20 }),
);

let h: Harness;
let probe: Redis;

beforeAll(async () => {
  h = await startHarness({ driver, env: { API_MAX_FOLLOWERS: '60' } });
  probe = new Redis(h.redis.url);
});
afterAll(async () => {
  probe?.disconnect();
  await h?.stop();
  expect(driver.liveCount()).toBe(0);
});

async function startRun(runbook: string): Promise<string> {
  const res = await h.postJson(
    `${h.url}/v1/chat/completions`,
    runbookRequest(runbook, { stream: false, jetty: { timeout_hint: 0 } }),
  );
  expect(res.status).toBe(202);
  return ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata.trajectory_id;
}

async function redisClients(): Promise<number> {
  const list = (await probe.client('LIST')) as string;
  return list.trim().split('\n').length - 1; // less the probe itself
}

interface Follower {
  ids: string[];
  types: string[];
  /** Resolves when the first event arrived. */
  first: Promise<void>;
  done: Promise<void>;
  abort: AbortController;
}

function follow(runId: string, after?: string): Follower {
  const abort = new AbortController();
  const f = { ids: [] as string[], types: [] as string[], abort } as Follower;
  let gotFirst: () => void = () => undefined;
  f.first = new Promise((r) => {
    gotFirst = r;
  });
  f.done = (async () => {
    const res = await h.fetch(`${h.url}/v1/runs/${runId}/events`, {
      headers: after ? { 'last-event-id': after } : {},
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    try {
      for await (const ev of readSse(res.body!)) {
        if (ev.comment !== undefined) continue;
        f.ids.push(ev.id!);
        f.types.push(ev.event!);
        gotFirst();
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
  })();
  f.done.catch(() => undefined);
  return f;
}

async function storedIds(runId: string): Promise<string[]> {
  return (await h.server.runs.events.readAll(runId)).map((e) => e.id);
}

describe('followers of a run', () => {
  it('fifty followers of one run add no Redis connection each, and each gets every event once, in order', async () => {
    const runId = await startRun(SLOW);
    // The shared reader's two connections are opened by the first follower: count after it.
    const warm = follow(runId);
    await warm.first;
    const before = await redisClients();
    const many = Array.from({ length: 50 }, () => follow(runId));
    await Promise.all(many.map((f) => f.first));
    const during = await redisClients();
    expect(during - before).toBeLessThanOrEqual(1);
    await Promise.all([warm.done, ...many.map((f) => f.done)]);

    const all = await storedIds(runId);
    expect(all.length).toBeGreaterThan(20);
    for (const f of [warm, ...many]) {
      expect(f.ids).toEqual(all);
      expect(f.types.at(-1)).toBe('run.completed');
    }
    expect(h.server.runs.events.followStats()).toEqual({ followers: 0, streams: 0 });
  });

  it('followers that join mid-run with Last-Event-ID get exactly the events after it', async () => {
    const runId = await startRun(SLOW);
    const joiners: { after: string; f: Follower }[] = [];
    // Join at several points while the run writes events.
    for (let i = 0; i < 5; i++) {
      const have = await waitFor(
        async () => {
          const ids = await storedIds(runId);
          return ids.length > joiners.length * 4 + 2 ? ids : null;
        },
        10_000,
        'more events',
      );
      const after = have[have.length - 1]!;
      joiners.push({ after, f: follow(runId, after) });
    }
    await Promise.all(joiners.map((j) => j.f.done));
    const all = await storedIds(runId);
    for (const { after, f } of joiners) {
      expect(f.ids).toEqual(all.slice(all.indexOf(after) + 1));
    }
  });

  it('a client that goes away is let go at once: nothing of it stays in the process or in Redis', async () => {
    const runId = await startRun(SLOW);
    const fs = Array.from({ length: 20 }, () => follow(runId));
    await Promise.all(fs.map((f) => f.first));
    expect(h.server.runs.events.followStats().followers).toBe(20);
    const clients = await redisClients();
    for (const f of fs) f.abort.abort();
    // How fast is the benchmark's to say (bench --followers); here: that they go, and wholly.
    await expect
      .poll(() => h.server.runs.events.followStats().followers, { timeout: 1000, interval: 5 })
      .toBe(0);
    expect(h.server.runs.events.followStats().streams).toBe(0);
    expect(await redisClients()).toBeLessThanOrEqual(clients);
    // The run goes on: leaving is not cancelling.
    const end = await waitFor(
      async () => {
        const rec = (await (await h.fetch(`${h.url}/v1/runs/${runId}`)).json()) as { status: string };
        return rec.status === 'completed' ? rec : null;
      },
      20_000,
      'the run to complete',
    );
    expect(end.status).toBe('completed');
  });

  it('past API_MAX_FOLLOWERS a new follower gets a 503 naming the setting, and a streamed request starts no run', async () => {
    const runId = await startRun(SLOW);
    const fs = Array.from({ length: 60 }, () => follow(runId));
    await Promise.all(fs.map((f) => f.first));

    const res = await h.fetch(`${h.url}/v1/runs/${runId}/events`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    const body = (await res.json()) as { error: { code: string; message: string; type: string } };
    expect(body.error.code).toBe('too_many_followers');
    expect(body.error.type).toBe('service_unavailable');
    expect(body.error.message).toContain('API_MAX_FOLLOWERS');

    const jobs = await h.jobsEnqueued();
    const chat = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK));
    expect(chat.status).toBe(503);
    expect(((await chat.json()) as { error: { code: string } }).error.code).toBe('too_many_followers');
    expect(await h.jobsEnqueued()).toBe(jobs);

    // Room again once followers leave.
    for (const f of fs.slice(0, 5)) f.abort.abort();
    await expect.poll(() => h.server.runs.events.followStats().followers).toBeLessThanOrEqual(55);
    const again = follow(runId);
    await again.done;
    expect(again.types.at(-1)).toBe('run.completed');
    await Promise.all(fs.map((f) => f.done));
  });
});
