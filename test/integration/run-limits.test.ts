import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStreamStore } from '../../src/events/stream-store.js';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';

// A run that prints more events than its limit, on a real Redis and queue (the sandbox is played
// back): the stream stops at the limit but for the notice and the end, and the record says so.
const RUNBOOK = '---\nagent: claude-code\n---\n# Busy\nDo many things.\n';
const driver = new ScriptedDriver(() => claudeLines({ steps: 80, delayMs: 0 }));
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ driver, env: { RUN_MAX_EVENTS: '100' } });
});
afterAll(async () => {
  await h?.stop();
});

interface Ev {
  type: string;
  data: Record<string, unknown>;
}

describe('a run over its event limit (RUN_MAX_EVENTS=100)', () => {
  it('stores 100 events, one output_limit warning and its end; the record lists the limit', async () => {
    const res = await h.postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK, { stream: false }));
    const body = (await res.json()) as { jetty_metadata: { trajectory_id: string; status: string } };
    expect(body.jetty_metadata.status).toBe('completed');
    const runId = body.jetty_metadata.trajectory_id;
    const events = (
      (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as { events: Ev[] }
    ).events;
    // 80 steps make 240 events; the stream holds 100, the notice and the end.
    expect(events).toHaveLength(102);
    const warnings = events.filter((e) => e.type === 'run.warning');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.data).toMatchObject({ code: 'output_limit' });
    expect(String(warnings[0]?.data.message)).toContain('RUN_MAX_EVENTS');
    expect(events.at(-1)?.type).toBe('run.completed');
    // The usage the agent reported at the very end still counts.
    expect(events.at(-1)?.data).toMatchObject({ usage: { input_tokens: 10, output_tokens: 5 } });
    const record = (await (await h.fetch(`${h.url}/v1/runs/${runId}`)).json()) as Record<string, unknown>;
    expect(record.limits_hit).toEqual(['max_events']);
    expect(record.final_text).toBe('all done');
  });
});

describe("the event stream's own cap", () => {
  it('refuses an append past it, except the terminal event and one marked always', async () => {
    const redis = new Redis(h.redis.url);
    try {
      const store = new EventStreamStore(redis, (id) => `cap-test:${id}`, 3);
      const log = { type: 'log', data: { stream: 'stderr', line: 'l' } } as const;
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(await store.append('r', log));
      expect(ids.map((id) => id !== null)).toEqual([true, true, true, false, false]);
      expect(
        await store.append('r', { type: 'run.warning', data: { code: 'c', message: 'm' } }, { always: true }),
      ).not.toBeNull();
      const end = {
        type: 'run.cancelled',
        data: { reason: 'x', usage: {} as never, duration_ms: 0 },
      } as const;
      expect(await store.append('r', end)).not.toBeNull();
      expect((await store.readAll('r')).map((e) => e.type)).toEqual([
        'log',
        'log',
        'log',
        'run.warning',
        'run.cancelled',
      ]);
    } finally {
      redis.disconnect();
    }
  });
});
