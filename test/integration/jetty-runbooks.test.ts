import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxSpec } from '../../src/sandbox/driver.js';
import { type Harness, startHarness } from '../support/harness.js';
import { claudeLines, promptOf, ScriptedDriver, type ScriptStep } from '../support/scripted-driver.js';

// Runbooks in Jetty's published format, each submitted unchanged on both surfaces
// (/v1/chat/completions and /api/v1/run): accepted or refused exactly as issue 12's rules say.
// The sandbox is scripted (the rules are the API's); Redis, BullMQ and the server are real.
const CANARY = randomBytes(8).toString('hex');
const KEYS = {
  OPENAI_API_KEY: `sk-openai-${CANARY}`,
  OPENROUTER_API_KEY: `sk-or-${CANARY}`,
  ANTHROPIC_API_KEY: `sk-ant-${CANARY}`,
  SERP_API_KEY: `serp-${CANARY}`,
};

let h: Harness;
let codexLines: ScriptStep[] = [];
// Each sandbox plays back its runtime's own recorded output.
const driver = new ScriptedDriver((spec) =>
  spec.agentImage.includes('codex') ? codexLines : claudeLines({ steps: 1, delayMs: 0 }),
);
let taskSeq = 0;

beforeAll(async () => {
  const recorded = await readFile(new URL('../fixtures/codex/success-shell.jsonl', import.meta.url), 'utf8');
  codexLines = recorded
    .split('\n')
    .filter(Boolean)
    .map((l) => ({ line: JSON.parse(l) }));
  h = await startHarness({ driver });
  await h.setEnv(KEYS);
});
afterAll(async () => {
  await h?.stop();
});

const fixture = (name: string) =>
  readFile(new URL(`../fixtures/jetty-runbooks/${name}.md`, import.meta.url), 'utf8');

interface Outcome {
  status: number;
  body: any;
  runId?: string;
}

/** The chat surface, as Jetty's clients send it: the runbook as the system message. */
async function viaChat(runbook: string, vars: Record<string, string> = {}): Promise<Outcome> {
  const res = await h.server.app!.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', ...h.auth },
    payload: JSON.stringify({
      model: 'runbook',
      stream: false,
      messages: [
        { role: 'system', content: runbook },
        { role: 'user', content: 'Execute the runbook.' },
      ],
      jetty: { runbook: true, template_variables: vars },
    }),
  });
  const body = res.json();
  return { status: res.statusCode, body, runId: body.jetty_metadata?.trajectory_id };
}

/** The /api/v1 surface: a runbook task, run with multipart init_params={"vars": ...}. */
async function viaApi(runbook: string, vars: Record<string, string> = {}): Promise<Outcome> {
  const task = `t${++taskSeq}`;
  const created = await h.postJson(`${h.url}/api/v1/tasks/${h.collection}`, {
    name: task,
    workflow: {
      steps: ['run'],
      step_configs: { run: { activity: 'runbook' } },
      init_params: { instruction: runbook },
    },
  });
  expect(created.ok).toBe(true);
  const fd = new FormData();
  fd.append('init_params', JSON.stringify({ vars }));
  const res = await h.fetch(`${h.url}/api/v1/run/${h.collection}/${task}`, { method: 'POST', body: fd });
  const body = (await res.json()) as any;
  const runId = body.trajectory?.trajectory_id as string | undefined;
  if (runId) await h.server.runs.waitForEnd(runId, h.collection, 20_000, new AbortController().signal);
  return { status: res.status, body, ...(runId ? { runId } : {}) };
}

const SURFACES = [
  ['/v1/chat/completions', viaChat, 'jetty.template_variables'],
  ['/api/v1/run', viaApi, 'init_params.vars'],
] as const;

async function runRecord(id: string) {
  return (await (await h.fetch(`${h.url}/v1/runs/${id}`)).json()) as any;
}

function sandboxOf(id: string): SandboxSpec {
  const spec = driver.started.find((s) => s.runId === id);
  if (!spec) throw new Error(`no sandbox started for ${id}`);
  return spec;
}

describe.each(SURFACES)('Jetty runbooks on %s', (_surface, submit, varsField) => {
  it('market-brief: a (required) variable not given is a 422 naming it, its description, and this surface’s field', async () => {
    const r = await submit(await fixture('market-brief'));
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('missing_template_variables');
    expect(r.body.error.param).toBe(varsField);
    expect(r.body.error.message).toContain('`topic` (The market to cover, e.g. "EU heat pumps")');
    expect(r.body.error.message).toContain(
      varsField === 'init_params.vars'
        ? 'init_params={"vars": {"topic":"..."}}'
        : '"template_variables": {"topic"',
    );
  });

  it('market-brief: defaults filled, optional/inferred left as written and warned, f-string braces kept', async () => {
    const r = await submit(await fixture('market-brief'), { topic: 'EU heat pumps' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const run = await runRecord(r.runId!);
    expect(run.status).toBe('completed');
    expect([run.provider, run.model]).toEqual(['openrouter', 'anthropic/claude-sonnet-4.6']);
    expect(run.primary_outputs).toEqual(['brief.md']);
    const unfilled = run.warnings.find((w: any) => w.code === 'template_variables_unfilled');
    expect(unfilled.message).toContain('{{competitors}} (optional), {{region}} (inferred)');
    expect(unfilled.message).toContain(varsField);
    expect(unfilled.message).not.toContain('escaped');
    const prompt = promptOf(sandboxOf(r.runId!));
    expect(prompt).toContain('market brief on EU heat pumps for investors, in a neutral tone');
    expect(prompt).toContain('case "{{competitors}}" in');
    expect(prompt).toContain('print(f"{{escaped}} braces stay literal: {topic}")');
    // A secret without `env` is its own name.
    expect(sandboxOf(r.runId!).env.SERP_API_KEY).toBe(KEYS.SERP_API_KEY);

    const traj = (await (
      await h.fetch(`${h.url}/api/v1/db/trajectory/${h.collection}/${run.task ?? 'run'}/${r.runId}`)
    ).json()) as any;
    expect(traj.init_params).toMatchObject({
      agent: 'claude-code',
      model: 'anthropic/claude-sonnet-4.6',
      model_provider: 'openrouter',
      snapshot: 'python312-uv',
      file_paths: [],
      vars: { topic: 'EU heat pumps', audience: 'investors', tone: 'neutral', results_dir: '/app/results' },
    });
    expect(JSON.stringify(traj)).not.toContain(CANARY);
  });

  it('codex-refactor: bare gpt-5.5 and no provider goes to openai, though the collection has an OpenRouter key', async () => {
    const r = await submit(await fixture('codex-refactor'));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const run = await runRecord(r.runId!);
    expect([run.agent, run.provider, run.model]).toEqual(['codex', 'openai', 'gpt-5.5']);
    expect(run.warnings.filter((w: any) => w.code !== 'missing_required_outputs')).toEqual([]);
  });

  it('llm-summarizer: a provider key declared as a secret is accepted; the sandbox holds a gateway token', async () => {
    const r = await submit(await fixture('llm-summarizer'));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const spec = sandboxOf(r.runId!);
    expect(spec.env.OPENAI_API_KEY).toMatch(/^jrt_/);
    expect(spec.env.OPENAI_BASE_URL).toBe('http://127.0.0.1:4100/v1');
    expect(JSON.stringify(spec)).not.toContain(CANARY);
  });

  it('pelican-visual: evaluation visual kept with a warning; primary_outputs are not required files', async () => {
    const r = await submit(await fixture('pelican-visual'));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const run = await runRecord(r.runId!);
    expect([run.provider, run.model]).toEqual(['anthropic', 'claude-sonnet-4-6']);
    expect(run.primary_outputs).toEqual(['pelican.svg', 'pelican.png']);
    expect(run.missing_outputs).toEqual(['/app/results/summary.md']);
    expect(run.warnings.map((w: any) => w.code)).toEqual(['evaluation_unknown', 'missing_required_outputs']);
    expect(run.warnings[1].message).not.toContain('pelican');
  });

  it('pelican-visual: without the Anthropic key, rewritten to OpenRouter’s slug, with the warning', async () => {
    await h.setEnv({ ANTHROPIC_API_KEY: null });
    try {
      const r = await submit(await fixture('pelican-visual'));
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      const run = await runRecord(r.runId!);
      expect([run.provider, run.model]).toEqual(['openrouter', 'anthropic/claude-sonnet-4.6']);
      expect(run.warnings.map((w: any) => w.code)).toContain('model_rewritten');
    } finally {
      await h.setEnv({ ANTHROPIC_API_KEY: KEYS.ANTHROPIC_API_KEY });
    }
  });

  it('gemini-with-gpt: a model the runtime cannot run is refused before it starts', async () => {
    const r = await submit(await fixture('gemini-with-gpt'));
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('model_unsupported');
    expect(r.body.error.param).toMatch(/\.frontmatter\.model$/);
    expect(r.body.error.message).toContain('gemini-cli cannot run the model "gpt-5.5"');
  });
});

describe('what an OpenAI SDK caller sees', () => {
  it('the final chunk carries every warning and the primary outputs, first one first', async () => {
    const client = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: h.key, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: 'runbook',
      stream: true,
      messages: [
        { role: 'system', content: await fixture('pelican-visual') },
        { role: 'user', content: 'Execute the runbook.' },
      ],
      // An extra body field: the SDK sends it as given.
      jetty: { runbook: true },
    } as never);
    let last: any;
    for await (const chunk of stream as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) last = chunk;
    expect(last.choices[0].finish_reason).toBe('stop');
    expect(last.jetty_metadata.primary_outputs).toEqual(['pelican.svg', 'pelican.png']);
    expect(last.jetty_metadata.warnings.map((w: any) => w.code)).toEqual([
      'evaluation_unknown',
      'missing_required_outputs',
    ]);
  });
});
