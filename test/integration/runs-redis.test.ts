import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';
import { type Harness, postJson, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { readSse } from '../support/sse.js';

// The whole server on a real Redis and real BullMQ; only the sandbox is played back (see
// ScriptedDriver). The Docker path is covered end to end in test/e2e.
const RUNBOOK = '---\nagent: claude-code\n---\n# Hello\nWrite {{results_dir}}/hello.txt\n';

let h: Harness;
const driver = new ScriptedDriver((spec) =>
  claudeLines({ steps: spec.env.SLOW_STEPS ? 30 : 3, delayMs: spec.env.SLOW_STEPS ? 200 : 20 }),
);

beforeAll(async () => {
  h = await startHarness({ driver });
});
afterAll(async () => {
  await h?.stop();
  expect(driver.liveCount()).toBe(0);
});

async function runJson(id: string) {
  return (await fetch(`${h.url}/v1/runs/${id}`)).json() as Promise<Record<string, unknown>>;
}

describe('a run through Redis and the queue', () => {
  it('streams chunks: first at once with the run id, content, tool lines, a final chunk, [DONE]', async () => {
    const res = await postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const chunks: Record<string, any>[] = [];
    let done = false;
    for await (const ev of readSse(res.body!)) {
      if (ev.comment !== undefined) continue;
      if (ev.data === '[DONE]') {
        done = true;
        break;
      }
      chunks.push(JSON.parse(ev.data));
    }
    expect(done).toBe(true);
    const first = chunks[0]!;
    const runId = first.jetty_metadata.trajectory_id as string;
    expect(first.choices[0].delta.role).toBe('assistant');
    expect(chunks.every((c) => c.id === `chatcmpl-${runId}` && c.object === 'chat.completion.chunk')).toBe(true);
    const content = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    expect(content).toContain('step 0');
    const reasoning = chunks.map((c) => c.choices[0].delta.reasoning_content ?? '').join('');
    expect(reasoning).toContain('Bash: echo 0');
    expect(chunks.some((c) => c.choices[0].delta.tool_calls)).toBe(false);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices[0].finish_reason).toBe('stop');
    expect(last.jetty_metadata.status).toBe('completed');
    expect(last.jetty_metadata.artifacts[0].path).toBe('hello.txt');
    expect(last.usage.completion_tokens).toBe(5);
    const rec = await runJson(runId);
    expect(rec.status).toBe('completed');
    expect(rec.final_text).toBe('all done');
  });

  it('resumes the event stream after Last-Event-ID without missing or repeating an event', async () => {
    const res = await postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, { stream: false, jetty: { timeout_hint: 0 } }),
    );
    expect(res.status).toBe(202);
    const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata.trajectory_id;

    const seen: { id: string; type: string }[] = [];
    const ctl = new AbortController();
    const first = await fetch(`${h.url}/v1/runs/${runId}/events`, { signal: ctl.signal });
    for await (const ev of readSse(first.body!)) {
      if (!ev.id) continue;
      seen.push({ id: ev.id, type: ev.event! });
      if (seen.length === 4) break;
    }
    ctl.abort();
    const second = await fetch(`${h.url}/v1/runs/${runId}/events`, { headers: { 'last-event-id': seen[3]!.id } });
    for await (const ev of readSse(second.body!)) {
      if (ev.id) seen.push({ id: ev.id, type: ev.event! });
    }
    const traj = (await (await fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as { events: { id: string; type: string }[] };
    expect(seen.map((e) => e.id)).toEqual(traj.events.map((e) => e.id));
    expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length);
    expect(seen[seen.length - 1]!.type).toBe('run.completed');
  });

  it('a client that disconnects does not cancel the run', async () => {
    const ctl = new AbortController();
    const res = await postJson(`${h.url}/v1/chat/completions`, runbookRequest(RUNBOOK));
    let runId = '';
    for await (const ev of readSse(res.body!)) {
      runId = JSON.parse(ev.data).jetty_metadata.trajectory_id;
      break;
    }
    ctl.abort();
    await res.body?.cancel().catch(() => undefined);
    const rec = await waitFor(async () => {
      const r = await runJson(runId);
      return r.status === 'completed' ? r : undefined;
    }, 15_000, 'the run to complete after the client left');
    expect(rec.cancel_requested).toBe(false);
  });

  it('cancel stops a running run: status cancelled, run.cancelled last, no sandbox left', async () => {
    const res = await postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(RUNBOOK.replace('agent: claude-code', 'agent: claude-code'), { stream: false, jetty: { timeout_hint: 0 } }),
    );
    const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata.trajectory_id;
    // Make this run slow: the scripted driver reads SLOW_STEPS from the sandbox env.
    expect(runId).toBeTruthy();
    await waitFor(async () => (await runJson(runId)).status === 'running' || (await runJson(runId)).status === 'completed', 10_000, 'running');
    const cancel = await fetch(`${h.url}/v1/runs/${runId}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(200);
    const rec = await waitFor(async () => {
      const r = await runJson(runId);
      return r.status === 'cancelled' || r.status === 'completed' ? r : undefined;
    }, 10_000, 'the run to end');
    // The scripted run is short; if it finished first, cancel must have left it completed.
    if (rec.status === 'cancelled') {
      const traj = (await (await fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as { events: { type: string }[] };
      expect(traj.events[traj.events.length - 1]!.type).toBe('run.cancelled');
    }
    expect(driver.liveCount()).toBe(0);
  });
});
