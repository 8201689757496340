import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JettyClient } from '@jetty/sdk';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from '../support/harness.js';
import { sandboxesLeft } from '../support/sandboxes.js';

// A/B experiments end to end: the real claude and codex CLIs in real sandboxes, the simulated
// model, the `jetty ab` CLI (dist/) against a real server. Every figure of the experiment is
// checked against its runs' own records.
const docker = new Dockerode();
const CLI = path.resolve(import.meta.dirname, '../../dist/src/main/cli.js');
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
}, 120_000);
afterEach(async () => {
  // Warm sandboxes no run has claimed stay with the pool (the harness checks they go at its stop).
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left).toEqual([]);
});
afterAll(async () => {
  await h?.stop();
});

// The script passes when both files exist. The agent writes extra.md only when its sandbox holds the
// codex agent layer (/opt/jetty/RUNTIME names it; codex's login shell drops /opt/jetty from PATH, so
// `command -v codex` cannot tell), so the codex variant passes and the claude-code one fails.
const RUNBOOK = [
  '---',
  'evaluation: programmatic',
  'model_provider: simulated',
  '---',
  '# A/B — Agent Runbook',
  '',
  '## REQUIRED OUTPUT FILES',
  '',
  '| File | Description |',
  '|---|---|',
  '| `{{results_dir}}/brief.md` | the brief |',
  '',
  '## Final Checklist',
  '',
  '### Verification Script',
  '',
  '```bash',
  'for f in brief.md extra.md; do',
  '  if [ -s "{{results_dir}}/$f" ]; then echo "PASS: $f"; else echo "FAIL: $f missing"; fi',
  'done',
  '```',
  '',
  '```simulate',
  '- run: |',
  "    mkdir -p {{results_dir}} && printf 'brief\\n' > {{results_dir}}/brief.md",
  "    if grep -q '^codex ' /opt/jetty/RUNTIME; then printf 'extra\\n' > {{results_dir}}/extra.md; fi",
  '- say: Done.',
  '```',
  '',
].join('\n');

interface Variant {
  name: string;
  runs: number;
  completed: number;
  ended: number;
  passed: number;
  pass_rate: number | null;
  pass_rate_ci: [number, number] | null;
  mean_score: number | null;
  median_duration_ms: number | null;
  mean_cost_usd: number | null;
  tokens: number;
  run_ids: string[];
}
interface Experiment {
  id: string;
  status: string;
  grader: { kind: string | null };
  variants: Variant[];
}

function cli(args: string[], cwd: string): { child: ChildProcess; out: () => string; done: Promise<number> } {
  const child = spawn(process.execPath, [CLI, ...args, '--server', h.url], {
    cwd,
    env: { PATH: process.env.PATH, JETTY_API_KEY: h.key },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  return { child, out: () => out, done: new Promise((r) => child.on('close', (c) => r(c ?? -1))) };
}

const getJson = async <T>(p: string): Promise<T> => (await (await h.fetch(`${h.url}${p}`)).json()) as T;

/** What the variant's figures must be, recomputed here from its runs' records. */
function expectFromRecords(v: Variant, recs: any[]): void {
  const graded = recs.filter((r) => r.status !== 'cancelled' && ['completed', 'failed'].includes(r.status));
  const passed = graded.filter((r) => r.evaluation?.passed === true).length;
  const durations = graded.map((r) => r.duration_ms as number).sort((a, b) => a - b);
  const mid = Math.floor(durations.length / 2);
  const med = durations.length % 2 ? durations[mid] : (durations[mid - 1]! + durations[mid]!) / 2;
  expect(v.runs).toBe(recs.length);
  expect(v.completed).toBe(recs.filter((r) => r.status === 'completed').length);
  expect(v.passed).toBe(passed);
  expect(v.pass_rate).toBe(graded.length ? Math.round((passed / graded.length) * 1e4) / 1e4 : null);
  expect(v.median_duration_ms).toBe(durations.length ? med : null);
  expect(v.tokens).toBe(graded.reduce((n, r) => n + r.usage.input_tokens + r.usage.output_tokens, 0));
  const scores = graded.map((r) => r.evaluation.score as number);
  expect(v.mean_score).toBe(
    scores.length ? Math.round((scores.reduce((a, b) => a + b, 0) / scores.length) * 1000) / 1000 : null,
  );
  for (const r of recs) expect(r.labels).toMatchObject({ variant: v.name });
}

describe('A/B experiments', () => {
  it('jetty ab runs 2 variants on two runtimes × 3 repeats; every figure equals what its runs’ records say', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'jetty-ab-'));
    await writeFile(path.join(dir, 'ab.md'), RUNBOOK);
    const c = cli(['ab', 'ab.md', '--variant', 'claude-code', '--variant', 'codex', '-n', '3'], dir);
    const code = await c.done;
    const out = c.out();
    expect(code, out).toBe(0);
    const id = /experiment (exp_[A-Za-z0-9_-]+)/.exec(out)![1]!;
    // Not a TTY: plain progress lines, then the table once.
    expect(out).toContain('codex: 3/3 ended, 3 passed');
    expect(out).toMatch(/^claude-code\s+3\/3\s+0\s+0% \[0%, 56%\]/m);
    expect(out).toMatch(/^codex\s+3\/3\s+3\s+100% \[44%, 100%\]/m);
    expect(out).toContain(`experiment ${id}: completed`);

    const exp = await getJson<Experiment>(`/v1/experiments/${id}`);
    expect(exp).toMatchObject({ status: 'completed', grader: { kind: 'programmatic' } });
    const [claude, codex] = exp.variants;
    expect(claude).toMatchObject({ name: 'claude-code', passed: 0, pass_rate: 0, pass_rate_ci: [0, 0.5615] });
    expect(codex).toMatchObject({ name: 'codex', passed: 3, pass_rate: 1, pass_rate_ci: [0.4385, 1] });
    for (const v of exp.variants) {
      const recs = await Promise.all(v.run_ids.map((r) => getJson<any>(`/v1/runs/${r}`)));
      expect(recs.map((r) => r.agent)).toEqual(Array(3).fill(v.name));
      for (const r of recs) expect(r.labels.experiment).toBe(id);
      expectFromRecords(v, recs);
    }
    // The runs are listed by experiment too.
    const listed = await getJson<{ data: { id: string }[] }>(`/v1/runs?experiment=${id}&limit=100`);
    expect(listed.data).toHaveLength(6);
  }, 600_000);

  it('cancelling mid-way stops the runs not yet ended; progress is streamed; another collection gets a 404', async () => {
    const res = await h.postJson(`${h.url}/v1/experiments`, {
      runbook: RUNBOOK,
      variants: [{ agent: 'claude-code' }, { agent: 'codex' }],
      repeats: 3,
    });
    expect(res.status).toBe(201);
    const exp = (await res.json()) as Experiment;
    const events = await h.fetch(`${h.url}/v1/experiments/${exp.id}/events`);
    expect(events.headers.get('content-type')).toContain('text/event-stream');
    const reader = events.body!.getReader();
    let text = '';
    // Until the first run has ended (a figure changed), then cancel the rest.
    while (!/"ended":1/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const cancelled = (await (
      await h.postJson(`${h.url}/v1/experiments/${exp.id}/cancel`, {})
    ).json()) as Experiment;
    expect(cancelled.status).toBe('cancelled');
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text).toContain('event: experiment');
    expect(text).toContain('"status":"cancelled"');
    // Every run ends; those cut short end cancelled, and no more start.
    let final: Experiment;
    for (;;) {
      final = await getJson<Experiment>(`/v1/experiments/${exp.id}`);
      if (final.variants.every((v) => v.ended === v.runs)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const recs = await Promise.all(
      final.variants.flatMap((v) => v.run_ids).map((r) => getJson<any>(`/v1/runs/${r}`)),
    );
    const byStatus = (s: string) => recs.filter((r) => r.status === s).length;
    expect(byStatus('cancelled')).toBeGreaterThanOrEqual(2);
    expect(byStatus('completed') + byStatus('failed') + byStatus('cancelled')).toBe(6);
    for (const v of final.variants) {
      expectFromRecords(
        v,
        recs.filter((r) => r.labels.variant === v.name),
      );
    }
    const other = await h.addCollection('other-team');
    const foreign = await fetch(`${h.url}/v1/experiments/${exp.id}`, { headers: other.auth });
    expect(foreign.status).toBe(404);
  }, 600_000);

  it('runs a task’s runbook: its runs are that task’s, graded and counted the same way', async () => {
    const sdk = new JettyClient({ apiUrl: h.url, token: h.key });
    await sdk.createTask(h.collection, 'ab-task', {
      steps: ['run'],
      step_configs: { run: { activity: 'runbook' } },
      init_params: { instruction: RUNBOOK },
    });
    const res = await h.postJson(`${h.url}/v1/experiments`, {
      task: 'ab-task',
      variants: [{ agent: 'claude-code' }, { agent: 'codex' }],
      repeats: 1,
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as Experiment;
    let exp: Experiment;
    for (;;) {
      exp = await getJson<Experiment>(`/v1/experiments/${id}`);
      if (exp.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(exp.status).toBe('completed');
    expect(exp.variants.map((v) => [v.name, v.passed])).toEqual([
      ['claude-code', 0],
      ['codex', 1],
    ]);
    const runId = exp.variants[1]!.run_ids[0]!;
    expect((await getJson<any>(`/v1/runs/${runId}`)).task).toBe('ab-task');
    const t = await sdk.getTrajectory(h.collection, 'ab-task', runId);
    expect(t.labels.find((l) => l.key === 'eval.pass')?.value).toBe('true');
    expect(t.labels.find((l) => l.key === 'experiment')?.value).toBe(id);
  }, 300_000);

  it('refuses an experiment over EXPERIMENT_MAX_RUNS, naming the setting, before queueing anything', async () => {
    const res = await h.postJson(`${h.url}/v1/experiments`, {
      runbook: RUNBOOK,
      variants: [{ agent: 'claude-code' }, { agent: 'codex' }],
      repeats: 31,
    });
    expect(res.status).toBe(400);
    const err = ((await res.json()) as { error: { code: string; param: string; message: string } }).error;
    expect(err).toMatchObject({ code: 'experiment_too_large', param: 'repeats' });
    expect(err.message).toContain('EXPERIMENT_MAX_RUNS=60');
    // One grader: a variant cannot bring its own judge.
    const judged = await h.postJson(`${h.url}/v1/experiments`, {
      runbook: RUNBOOK,
      variants: [{ agent: 'claude-code' }, { agent: 'codex', jetty: { judge_model: 'gpt-5.5' } }],
    });
    expect(judged.status).toBe(400);
    expect(((await judged.json()) as { error: { code: string; param: string } }).error).toMatchObject({
      code: 'one_grader',
      param: 'variants[1].jetty.judge_model',
    });
    const runs = await getJson<{ data: unknown[] }>('/v1/runs?limit=100&experiment=none');
    expect(runs.data).toEqual([]);
  });
});
