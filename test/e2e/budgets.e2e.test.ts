import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listRuntimes } from '../../src/runtimes/registry.js';
import { BUDGET_GRACE_MS } from '../../src/worker/run-worker.js';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { sandboxesLeft } from '../support/sandboxes.js';

// A run's budget on the real engine with the real CLIs: the simulated model's script makes several
// model calls; the gateway refuses the one after the budget is spent, in the CLI's own protocol;
// the CLI takes that as final, and the run ends failed/budget_exceeded naming the figure, with
// what it spent in its record. A script calling the provider from the sandbox is counted too.
const docker = new Dockerode();
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
}, 120_000);
afterEach(async () => {
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left).toEqual([]);
});
afterAll(async () => {
  await h?.stop();
});

const THREE_CALLS = [
  '# Three steps',
  '```simulate',
  '- run: mkdir -p {{results_dir}} && echo one > {{results_dir}}/one.txt',
  '- run: echo two > {{results_dir}}/two.txt',
  '- run: echo three > {{results_dir}}/three.txt',
  '- say: all three written',
  '```',
  '',
].join('\n');

interface Ev {
  type: string;
  ts: number;
  data: Record<string, any>;
}

async function runToEnd(body: unknown) {
  const res = await h.postJson(`${h.url}/v1/chat/completions`, body);
  const json = (await res.json()) as { jetty_metadata: { trajectory_id: string } };
  const runId = json.jetty_metadata.trajectory_id;
  const traj = (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as {
    run: Record<string, any>;
    events: Ev[];
  };
  return { status: res.status, runId, run: traj.run, events: traj.events };
}

/** What the record says was spent is the gateway's own measure, and the budget it was held to. */
function expectSpendRecorded(run: Record<string, any>, limit: Record<string, unknown>) {
  expect(run.budget).toMatchObject({ ...limit, exceeded: true });
  expect(run.budget.spent_tokens).toBe(run.usage.input_tokens + run.usage.output_tokens);
  expect(run.budget.spent_tokens).toBeGreaterThan(0);
}

const wanted = new Set(['claude-code', 'codex', 'gemini-cli', 'opencode', 'hermes']);
for (const runtime of listRuntimes().filter((r) => wanted.has(r.name))) {
  describe(`${runtime.name}`, () => {
    it('a tiny token budget: the second model call is refused, the run ends failed/budget_exceeded', async () => {
      const r = await runToEnd(
        runbookRequest(THREE_CALLS, {
          stream: false,
          model: 'default',
          jetty: { agent: runtime.name, max_tokens: 1 },
        }),
      );
      expect(r.status).toBe(424);
      expect(r.run.status).toBe('failed');
      expect(r.run.error.code).toBe('budget_exceeded');
      expect(r.run.error.message).toContain('max_tokens of 1');
      expect(r.run.error.message).toContain(`${r.run.budget.spent_tokens.toLocaleString('en-US')} tokens`);
      expectSpendRecorded(r.run, { max_tokens: 1 });
      // The first call's tool ran; the refused call's never came.
      const paths = (r.run.artifacts as { path: string }[]).map((a) => a.path);
      expect(paths).toContain('one.txt');
      expect(paths).not.toContain('three.txt');
      const terminal = r.events.at(-1)!;
      expect(terminal.type).toBe('run.failed');
      expect(terminal.data.error.code).toBe('budget_exceeded');
      // The refusal ended the run within seconds (the CLI took it as final, or the worker stopped
      // it after BUDGET_GRACE_MS): no retry storm, no waiting out the run's timeout.
      const refused = r.events.find(
        (e) => e.type === 'log' && String(e.data.line).includes('budget is spent'),
      );
      expect(refused).toBeDefined();
      expect(terminal.ts - refused!.ts).toBeLessThan(BUDGET_GRACE_MS + 15_000);
    }, 180_000);
  });
}

describe('claude-code, more budgets', () => {
  it('a tiny cost budget names its figure; the collection’s spend today grows', async () => {
    const before = (await (await h.fetch(`${h.url}/v1/collection/settings`)).json()) as {
      spent_today_usd: number;
    };
    const r = await runToEnd(
      runbookRequest(THREE_CALLS, {
        stream: false,
        model: 'claude-sonnet-4-6',
        jetty: { agent: 'claude-code', max_cost_usd: 0.000001 },
      }),
    );
    expect(r.run.status).toBe('failed');
    expect(r.run.error.code).toBe('budget_exceeded');
    expect(r.run.error.message).toContain('max_cost_usd of $0.000001');
    expectSpendRecorded(r.run, { max_cost_usd: 0.000001 });
    expect(r.run.budget.spent_cost_usd).toBeGreaterThan(0.000001);
    const after = (await (await h.fetch(`${h.url}/v1/collection/settings`)).json()) as {
      spent_today_usd: number;
    };
    expect(after.spent_today_usd - before.spent_today_usd).toBeCloseTo(r.run.budget.spent_cost_usd, 5);
  }, 180_000);

  it('a script calling the provider from the sandbox spends the same budget, and is refused past it', async () => {
    // The script's first call (~2,000,000 input tokens) is let through and counted; its second,
    // and the CLI's next call, are refused.
    const runbook = [
      '# Script',
      '```simulate',
      '- run: |',
      "    cat > /tmp/spend.js <<'JS'",
      "    const body = JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 16, messages: [{ role: 'user', content: 'x'.repeat(8000000) }] });",
      "    const headers = { 'x-api-key': process.env.ANTHROPIC_API_KEY, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' };",
      "    const call = () => fetch(process.env.ANTHROPIC_BASE_URL + '/v1/messages', { method: 'POST', headers, body }).then((r) => r.status);",
      "    (async () => { const a = await call(); const b = await call(); console.log(a + ' ' + b); })();",
      '    JS',
      '    mkdir -p {{results_dir}} && node /tmp/spend.js > {{results_dir}}/script-calls.txt',
      '- run: echo two > {{results_dir}}/two.txt',
      '- say: done',
      '```',
      '',
    ].join('\n');
    const r = await runToEnd(
      runbookRequest(runbook, {
        stream: false,
        model: 'claude-sonnet-4-6',
        jetty: { agent: 'claude-code', max_tokens: 1_000_000 },
      }),
    );
    const calls = await (await h.fetch(`${h.url}/v1/runs/${r.runId}/artifacts/script-calls.txt`)).text();
    expect(calls.trim()).toBe('200 400');
    expect(r.run.status).toBe('failed');
    expect(r.run.error.code).toBe('budget_exceeded');
    expectSpendRecorded(r.run, { max_tokens: 1_000_000 });
    expect(r.run.budget.spent_tokens).toBeGreaterThan(2_000_000);
  }, 180_000);
});
