import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';

// The run deadline on the whole server (real Redis and BullMQ; the sandbox played back): an agent
// that would take 10 s under a 1 s timeout is stopped, and the run says why. If the deadline timer
// did nothing, this run would complete.

let h: Harness;
const driver = new ScriptedDriver(() => claudeLines({ steps: 50, delayMs: 200 }));

beforeAll(async () => {
  h = await startHarness({ driver });
});
afterAll(async () => {
  await h?.stop();
  expect(driver.liveCount()).toBe(0);
});

describe('a run past its deadline', () => {
  it('is stopped and ends failed with code timeout, keeping what it wrote', async () => {
    const t0 = Date.now();
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest('# Slow\n', { stream: false, jetty: { timeout_sec: 1, timeout_hint: 0 } }),
    );
    const id = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    const rec = await waitFor(
      async () => {
        const r = (await (await h.fetch(`${h.url}/v1/runs/${id}`)).json()) as {
          status: string;
          error: { code: string; message: string } | null;
          artifacts: { path: string }[];
        };
        return r.status === 'pending' || r.status === 'running' ? undefined : r;
      },
      8_000,
      'the run to end',
    );
    expect(rec.status).toBe('failed');
    expect(rec.error?.code).toBe('timeout');
    expect(rec.error?.message).toContain('timeout of 1 s');
    // Stopped at the deadline, not at the script's natural end (10 s).
    expect(Date.now() - t0).toBeLessThan(6_000);
    expect(rec.artifacts.map((a) => a.path)).toEqual(['hello.txt']);
  });
});
