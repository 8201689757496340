import { createServer } from 'node:http';
import { JettyClient } from '@jetty/sdk';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { sandboxesLeft } from '../support/sandboxes.js';
import { readSse } from '../support/sse.js';

// Every run is scored against its runbook: the real claude CLI in a real sandbox does what the
// simulated model scripts, then the worker runs the runbook's verification script in that same
// sandbox, or has the (simulated) judge score the outputs through the gateway.
const docker = new Dockerode();
let h: Harness;

// Webhooks are POSTed to a receiver on loopback, which they may reach only when the operator says so.
beforeAll(async () => {
  h = await startHarness({ env: { NETWORK_ALLOW_PRIVATE: '127.0.0.1' } });
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

interface Rec {
  id: string;
  status: string;
  error: { code: string; message: string } | null;
  warnings: { code: string; message: string }[];
  usage: { input_tokens: number; output_tokens: number };
  evaluation: any;
  evaluations?: any[];
}

/** A programmatic runbook: its script checks brief.md and extra.md; the agent writes what `writes` says. */
function programmatic(opts: { writes: string[]; reportPassed: boolean; frontmatter?: string[] }): string {
  const files = opts.writes.map((f) => `printf 'some text\\n' > {{results_dir}}/${f}`).join(' && ');
  return [
    '---',
    'evaluation: programmatic',
    ...(opts.frontmatter ?? []),
    '---',
    '# Brief — Agent Runbook',
    '',
    '## Objective',
    '',
    'Write brief.md and extra.md.',
    '',
    '## REQUIRED OUTPUT FILES',
    '',
    '| File | Description |',
    '|---|---|',
    '| `{{results_dir}}/brief.md` | the brief |',
    '| `{{results_dir}}/validation_report.json` | the report |',
    '',
    '## Step 8: Final Checklist (MANDATORY — do not skip)',
    '',
    '### Verification Script',
    '',
    '```bash',
    'echo "=== FINAL OUTPUT VERIFICATION ==="',
    'for f in brief.md extra.md; do',
    '  if [ -s "{{results_dir}}/$f" ]; then echo "PASS: $f ($(wc -c < "{{results_dir}}/$f") bytes)"; else echo "FAIL: $f is missing or empty"; fi',
    'done',
    '```',
    '',
    '```simulate',
    '- run: |',
    `    mkdir -p {{results_dir}} && ${files}`,
    `    printf '{"overall_passed": ${opts.reportPassed}, "results": {"pass": 2, "partial": 0, "fail": 0}}' > {{results_dir}}/validation_report.json`,
    '- say: Wrote the files and my report.',
    '```',
    '',
  ].join('\n');
}

/** A rubric runbook with three criteria; the simulated judge says what `judge` lists. */
function rubric(judge: string[], frontmatter: string[] = []): string {
  return [
    '---',
    'evaluation: rubric',
    'primary_outputs: [poem.md]',
    ...frontmatter,
    '---',
    '# Poem — Agent Runbook',
    '',
    '## Objective',
    '',
    'Write a short poem about the sea to poem.md.',
    '',
    '## REQUIRED OUTPUT FILES',
    '',
    '| File | Description |',
    '|---|---|',
    '| `{{results_dir}}/poem.md` | the poem |',
    '',
    '## Step 4: Evaluate Against Rubric',
    '',
    '| # | Criterion | 5 (Excellent) | 3 (Acceptable) | 1 (Poor) |',
    '|---|---|---|---|---|',
    '| 1 | Imagery | vivid | some | none |',
    '| 2 | Rhyme | every line | most lines | none |',
    '| 3 | Length | 8-12 lines | 4-16 lines | other |',
    '',
    '**Pass threshold: overall average >= 4.0, no individual criterion below 3.**',
    '',
    '```simulate',
    "- run: mkdir -p {{results_dir}} && printf 'The sea, the sea\\nwide and free\\n' > {{results_dir}}/poem.md",
    '- say: The poem is written.',
    '```',
    '',
    '```simulate-judge',
    ...judge,
    '```',
    '',
  ].join('\n');
}

async function runToEnd(runbook: string, jetty: Record<string, unknown> = {}): Promise<Rec> {
  const res = await h.postJson(
    `${h.url}/v1/chat/completions`,
    runbookRequest(runbook, { stream: false, jetty }),
  );
  const body = (await res.json()) as {
    jetty_metadata?: { trajectory_id: string };
    error?: { message: string };
  };
  const id = body.jetty_metadata?.trajectory_id;
  if (!id) throw new Error(`no run: ${res.status} ${JSON.stringify(body)}`);
  return (await (await h.fetch(`${h.url}/v1/runs/${id}`)).json()) as Rec;
}

describe('programmatic evaluation: the server runs the verification script itself', () => {
  it('fails a run whose agent reports a pass when the script finds a file missing; both are recorded, with a warning', async () => {
    const rec = await runToEnd(programmatic({ writes: ['brief.md'], reportPassed: true }));
    expect(rec.status).toBe('completed');
    const e = rec.evaluation;
    expect(e).toMatchObject({
      kind: 'programmatic',
      status: 'scored',
      passed: false,
      source: 'verification_script',
      results: { pass: 1, partial: 0, fail: 1 },
      score: 0.5,
      disagreement: true,
      agent_report: { overall_passed: true, results: { pass: 2, partial: 0, fail: 0 } },
    });
    expect(e.verification).toMatchObject({ exit_code: 0, timed_out: false });
    expect(e.verification.output).toContain('FAIL: extra.md is missing or empty');
    expect(e.stages.map((s: { name: string; passed: boolean }) => [s.name, s.passed])).toEqual([
      ['brief.md (10 bytes)', true],
      ['extra.md is missing or empty', false],
    ]);
    const warning = rec.warnings.find((w) => w.code === 'evaluation_disagreement');
    expect(warning?.message).toContain('overall_passed: true');
    expect(rec.evaluations).toHaveLength(1);
  }, 90_000);

  it('passes a run whose agent reports a failure when the script passes', async () => {
    const rec = await runToEnd(programmatic({ writes: ['brief.md', 'extra.md'], reportPassed: false }));
    expect(rec.evaluation).toMatchObject({
      passed: true,
      score: 1,
      results: { pass: 2, partial: 0, fail: 0 },
      disagreement: true,
      agent_report: { overall_passed: false },
    });
    expect(rec.warnings.map((w) => w.code)).toContain('evaluation_disagreement');
  }, 90_000);

  it('under require_pass, ends a failed evaluation as failed/evaluation_failed, with the evaluation in the final chunk', async () => {
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(programmatic({ writes: ['brief.md'], reportPassed: true }), {
        jetty: { require_pass: true },
      }),
    );
    const chunks: any[] = [];
    for await (const ev of readSse(res.body!)) {
      if (ev.comment !== undefined) continue;
      if (ev.data === '[DONE]') break;
      chunks.push(JSON.parse(ev.data));
    }
    const last = chunks.filter((c) => c.choices?.[0]?.finish_reason === 'stop').at(-1);
    expect(last.jetty_metadata.status).toBe('failed');
    expect(last.jetty_metadata.evaluation).toMatchObject({ passed: false, kind: 'programmatic' });
    expect(last.jetty_metadata.error.code).toBe('evaluation_failed');
    expect(chunks.some((c) => c.error?.code === 'evaluation_failed')).toBe(true);
    const rec = (await (
      await h.fetch(`${h.url}/v1/runs/${last.jetty_metadata.trajectory_id}`)
    ).json()) as Rec;
    expect(rec.status).toBe('failed');
    expect(rec.error?.message).toContain('require_pass');
  }, 90_000);

  it('marks an evaluation it cannot make as missing, with a warning, never as a pass', async () => {
    const runbook = [
      '---',
      'evaluation: programmatic',
      '---',
      '# Nothing to check',
      '',
      '```simulate',
      '- say: done',
      '```',
      '',
    ].join('\n');
    const rec = await runToEnd(runbook);
    expect(rec.status).toBe('completed');
    expect(rec.evaluation).toMatchObject({ status: 'missing', passed: null, source: 'none' });
    expect(rec.warnings.find((w) => w.code === 'evaluation_missing')?.message).toContain(
      'no verification script',
    );
  }, 90_000);

  it('lists runs by their evaluation: ?passed=false and ?passed=true', async () => {
    const failing = await runToEnd(programmatic({ writes: ['brief.md'], reportPassed: true }));
    const passing = await runToEnd(programmatic({ writes: ['brief.md', 'extra.md'], reportPassed: true }));
    const ids = async (q: string) =>
      ((await (await h.fetch(`${h.url}/v1/runs?limit=100&${q}`)).json()) as { data: Rec[] }).data.map(
        (r) => r.id,
      );
    const notPassed = await ids('passed=false');
    expect(notPassed).toContain(failing.id);
    expect(notPassed).not.toContain(passing.id);
    const passed = await ids('passed=true');
    expect(passed).toContain(passing.id);
    expect(passed).not.toContain(failing.id);
  }, 120_000);
});

describe('rubric evaluation: an independent judge through the gateway', () => {
  it('passes at or above the threshold; the judge’s usage is recorded apart and counted in the run’s', async () => {
    const rec = await runToEnd(rubric(['1: 5 vivid', '2: 4', '3: 4']), { judge_model: 'claude-opus-4-1' });
    const e = rec.evaluation;
    expect(e).toMatchObject({
      kind: 'rubric',
      passed: true,
      score: 4.33,
      source: 'judge',
      judge_model: 'claude-opus-4-1',
      judge_provider: 'simulated',
      threshold: { average: 4, min_criterion: 3 },
      rubric_scores: { imagery: { score: 5, notes: 'vivid' }, rhyme: { score: 4 }, length: { score: 4 } },
    });
    expect(e.judge_usage.input_tokens).toBeGreaterThan(0);
    expect(e.judge_usage.output_tokens).toBeGreaterThan(0);
    const traj = (await (await h.fetch(`${h.url}/v1/runs/${rec.id}/trajectory`)).json()) as {
      events: { type: string; data: any }[];
    };
    const judgeUsage = traj.events.filter((ev) => ev.type === 'usage' && ev.data.source === 'judge');
    expect(judgeUsage).toHaveLength(1);
    expect(judgeUsage[0]!.data).toMatchObject({
      input_tokens: e.judge_usage.input_tokens,
      model: 'claude-opus-4-1',
    });
    const agentIn = traj.events
      .filter((ev) => ev.type === 'usage' && ev.data.source === 'gateway')
      .reduce((n, ev) => n + ev.data.input_tokens, 0);
    expect(rec.usage.input_tokens).toBe(agentIn + e.judge_usage.input_tokens);
  }, 90_000);

  it('fails below the average, and with one criterion under its minimum even when the average clears', async () => {
    const low = await runToEnd(rubric(['1: 4', '2: 3', '3: 4']), { judge_model: 'claude-opus-4-1' });
    expect(low.evaluation).toMatchObject({ passed: false, score: 3.67 });
    expect(low.evaluation.summary).toContain('below 4');
    const oneLow = await runToEnd(rubric(['1: 5', '2: 5', '3: 2 far too short']), {
      judge_model: 'claude-opus-4-1',
    });
    expect(oneLow.evaluation).toMatchObject({
      passed: false,
      score: 4,
      results: { pass: 2, partial: 0, fail: 1 },
    });
    expect(oneLow.evaluation.summary).toContain('Length scored 2 (below the minimum of 3)');
  }, 120_000);

  it('records a judge that skips a criterion as an error, not a score', async () => {
    const rec = await runToEnd(rubric(['1: 5', '2: 5']), { judge_model: 'claude-opus-4-1' });
    expect(rec.evaluation).toMatchObject({ status: 'error', passed: null });
    expect(rec.evaluation.summary).toContain('did not score criterion 3 (Length)');
    expect(rec.warnings.map((w) => w.code)).toContain('evaluation_error');
  }, 90_000);

  it('warns when the judge is the agent’s own model', async () => {
    const rec = await runToEnd(rubric(['1: 5', '2: 5', '3: 5']));
    expect(rec.evaluation.judge_model).toBe('claude-sonnet-4-6');
    expect(rec.warnings.map((w) => w.code)).toContain('judge_is_agent_model');
  }, 90_000);
});

describe('re-grading an ended run from its stored files', () => {
  const regrade = async (id: string, body: Record<string, unknown>) =>
    h.postJson(`${h.url}/v1/runs/${id}/evaluate`, body);

  it('re-grades a rubric run with another threshold and another judge; each evaluation is kept, the newest current', async () => {
    const rec = await runToEnd(rubric(['1: 4', '2: 3', '3: 4']), { judge_model: 'claude-opus-4-1' });
    expect(rec.evaluation).toMatchObject({ passed: false, score: 3.67, number: 1, trigger: 'run' });
    const res = await regrade(rec.id, {
      threshold: { average: 3.5, min_criterion: 3 },
      judge_model: 'gpt-5.5',
    });
    expect(res.status).toBe(200);
    const after = (await res.json()) as Rec;
    expect(after.evaluation).toMatchObject({
      passed: true,
      score: 3.67,
      number: 2,
      trigger: 'regrade',
      threshold: { average: 3.5, min_criterion: 3 },
      judge_model: 'gpt-5.5',
      judge_provider: 'simulated',
    });
    // The judge was asked again: its usage joins the run's.
    expect(after.evaluation.judge_usage.input_tokens).toBeGreaterThan(0);
    expect(after.usage.input_tokens).toBe(rec.usage.input_tokens + after.evaluation.judge_usage.input_tokens);
    const stored = (await (await h.fetch(`${h.url}/v1/runs/${rec.id}`)).json()) as Rec;
    expect(stored.evaluations?.map((e) => [e.number, e.passed])).toEqual([
      [1, false],
      [2, true],
    ]);
    expect(stored.evaluation.number).toBe(2);
    // The filter follows the current evaluation.
    const passed = (
      (await (await h.fetch(`${h.url}/v1/runs?limit=100&passed=true`)).json()) as { data: Rec[] }
    ).data;
    expect(passed.map((r) => r.id)).toContain(rec.id);
  }, 120_000);

  it('re-checks a programmatic run’s files and carries its script run over; refuses rubric-only fields', async () => {
    const rec = await runToEnd(programmatic({ writes: ['brief.md'], reportPassed: true }));
    const res = await regrade(rec.id, {});
    expect(res.status).toBe(200);
    const after = (await res.json()) as Rec;
    expect(after.evaluation).toMatchObject({
      passed: false,
      number: 2,
      trigger: 'regrade',
      judge_usage: null,
    });
    expect(after.evaluation.verification).toMatchObject({ carried_over: true, exit_code: 0 });
    expect(after.evaluation.verification.output).toContain('FAIL: extra.md');
    expect(after.usage.input_tokens).toBe(rec.usage.input_tokens);
    const bad = await regrade(rec.id, { threshold: { average: 3, min_criterion: 2 } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string; param: string } }).error).toMatchObject({
      code: 'not_rubric',
      param: 'threshold',
    });
  }, 120_000);

  it('answers 202 past wait_sec, and the evaluation is recorded after; 409 while the run is going on', async () => {
    const rec = await runToEnd(programmatic({ writes: ['brief.md', 'extra.md'], reportPassed: true }));
    const res = await regrade(rec.id, { wait_sec: 0 });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ id: rec.id, status: 'queued', evaluation_number: 2 });
    const deadline = Date.now() + 30_000;
    let now: Rec;
    do {
      now = (await (await h.fetch(`${h.url}/v1/runs/${rec.id}`)).json()) as Rec;
      if (now.evaluation.number === 2) break;
      await new Promise((r) => setTimeout(r, 200));
    } while (Date.now() < deadline);
    expect(now.evaluation).toMatchObject({ number: 2, passed: true, trigger: 'regrade' });

    const slow = programmatic({ writes: ['brief.md'], reportPassed: true }).replace(
      '```simulate\n- run: |\n',
      '```simulate\n- run: sleep 30\n- run: |\n',
    );
    const started = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(slow, { stream: false, jetty: { timeout_hint: 0 } }),
    );
    const id = ((await started.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    try {
      const busy = await regrade(id, {});
      expect(busy.status).toBe(409);
      expect(((await busy.json()) as { error: { code: string } }).error.code).toBe('run_not_ended');
    } finally {
      await h.postJson(`${h.url}/v1/runs/${id}/cancel`, {});
      // Its sandbox is removed once the run has ended cancelled.
      const until = Date.now() + 30_000;
      while (Date.now() < until) {
        const r = (await (await h.fetch(`${h.url}/v1/runs/${id}`)).json()) as Rec;
        if (r.status === 'cancelled') break;
        await new Promise((res) => setTimeout(res, 200));
      }
    }
  }, 120_000);

  it('answers 404 for an unknown run and 400 for a run with no evaluation', async () => {
    expect((await regrade('nosuchrun', {})).status).toBe(404);
    const plain = await runToEnd(['```simulate', '- say: hi', '```', ''].join('\n'));
    const res = await regrade(plain.id, {});
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('no_evaluation');
  }, 90_000);
});

describe('the Jetty SDK reads the evaluation from /api/v1', () => {
  it('getTrajectory carries it in the run step’s outputs and as eval labels', async () => {
    const rec = await runToEnd(rubric(['1: 5 vivid', '2: 4', '3: 2 too short']), {
      judge_model: 'claude-opus-4-1',
      task: 'poem',
    });
    const sdk = new JettyClient({ apiUrl: h.url, token: h.key });
    const t = await sdk.getTrajectory(h.collection, 'poem', rec.id);
    const out = t.steps.run!.outputs as { evaluation: any };
    expect(out.evaluation).toMatchObject({
      kind: 'rubric',
      passed: false,
      score: 3.67,
      judge_model: 'claude-opus-4-1',
    });
    expect(out.evaluation.rubric_scores.length).toMatchObject({ score: 2, notes: 'too short' });
    const label = (k: string) => t.labels.filter((l) => l.key === k).at(-1)?.value;
    expect(label('eval.pass')).toBe('false');
    expect(label('eval.grade')).toBe('3.67');
    expect(label('score.length')).toBe('2');
    expect(label('eval.judge')).toBe('claude-opus-4-1');
  }, 90_000);
});

describe('webhooks carry the evaluation', () => {
  it('the trajectory POSTed when the run ends has the evaluation and its eval labels', async () => {
    const bodies: string[] = [];
    const receiver = createServer((req, res) => {
      let b = '';
      req.on('data', (c: Buffer) => (b += c.toString()));
      req.on('end', () => {
        bodies.push(b);
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (receiver.address() as { port: number }).port;
    try {
      const rec = await runToEnd(programmatic({ writes: ['brief.md'], reportPassed: true }), {
        webhook_url: `http://127.0.0.1:${port}/hook`,
      });
      const deadline = Date.now() + 30_000;
      while (bodies.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      // The body is the run's Jetty trajectory.
      const traj = JSON.parse(bodies[0]!);
      expect(traj.trajectory_id).toBe(rec.id);
      expect(traj.evaluation).toMatchObject({ kind: 'programmatic', passed: false, disagreement: true });
      expect(traj.labels.find((l: { key: string }) => l.key === 'eval.pass')?.value).toBe('false');
    } finally {
      receiver.close();
    }
  }, 90_000);
});
