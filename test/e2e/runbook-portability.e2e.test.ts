import { randomBytes } from 'node:crypto';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listRuntimes } from '../../src/runtimes/registry.js';
import { type Harness, startHarness } from '../support/harness.js';
import { sandboxesLeft } from '../support/sandboxes.js';
import { type SimulatedUpstream, startSimulatedUpstream } from '../support/simulated-upstream.js';

// Issue 12 end to end, with the real CLIs in their real sandboxes. No provider is simulated
// in-process here: the server's provider upstreams point at a simulated provider served on
// loopback, so every call goes through the gateway's routing with the collection's own key,
// as it would reach Anthropic, OpenAI, Google or OpenRouter.
const docker = new Dockerode();
const CANARY = randomBytes(10).toString('hex');
const KEYS = {
  OPENROUTER_API_KEY: `sk-or-${CANARY}`,
  GEMINI_API_KEY: `gm-${CANARY}`,
  OPENAI_API_KEY: `sk-openai-${CANARY}`,
};

let h: Harness;
let upstream: SimulatedUpstream;
// A real CLI in a real container, on a 2-core machine other test runs share: minutes, not seconds.
const RUN_TIMEOUT_MS = 180_000;

beforeAll(async () => {
  upstream = await startSimulatedUpstream();
  h = await startHarness({
    env: {
      ANTHROPIC_UPSTREAM_URL: `${upstream.url}/anthropic`,
      OPENAI_UPSTREAM_URL: `${upstream.url}/openai`,
      OPENROUTER_UPSTREAM_URL: `${upstream.url}/openrouter`,
      GOOGLE_UPSTREAM_URL: `${upstream.url}/google`,
    },
  });
  // No Anthropic key: a Claude runbook has to be rewritten to reach its model.
  await h.setEnv(KEYS);
}, 120_000);
afterEach(async () => {
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left).toEqual([]);
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
});

interface Ev {
  type: string;
  data: Record<string, any>;
}

async function runToEnd(runbook: string, jetty: Record<string, unknown> = {}) {
  const res = await h.postJson(`${h.url}/v1/chat/completions`, {
    model: 'runbook',
    stream: false,
    messages: [
      { role: 'system', content: runbook },
      { role: 'user', content: 'Execute the runbook.' },
    ],
    jetty: { runbook: true, timeout_hint: 170, ...jetty },
  });
  const json = (await res.json()) as any;
  const runId = json.jetty_metadata?.trajectory_id as string;
  const traj = (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as {
    run: Record<string, any>;
    events: Ev[];
  };
  return { status: res.status, json, runId, run: traj.run, events: traj.events };
}

const artifact = async (runId: string, p: string) =>
  (await h.fetch(`${h.url}/v1/runs/${runId}/artifacts/${p}`)).text();

// A Jetty runbook written for claude-code with a bare Anthropic slug and no provider.
const CLAUDE_RUNBOOK = [
  '---',
  'version: "1.0.0"',
  'evaluation: programmatic',
  'agent: claude-code',
  'model: claude-sonnet-4-6',
  '---',
  '# Hello — Agent Runbook',
  '',
  '## REQUIRED OUTPUT FILES (MANDATORY)',
  '',
  '| File | Description |',
  '|------|-------------|',
  '| `{{results_dir}}/hello.txt` | The greeting |',
  '',
  '## Parameters',
  '',
  '| Parameter | Template Variable | Default | Description |',
  '|-----------|-------------------|---------|-------------|',
  '| Greeting | `{{greeting}}` | `hi` | What to write |',
  '',
  '```simulate',
  '- say: Writing hello.txt now.',
  '- run: mkdir -p {{results_dir}} && printf hi > {{results_dir}}/hello.txt',
  '- say: wrote hello.txt',
  '```',
  '',
].join('\n');

/** For each runtime: the provider and model it ends up with, and the warning that says so. */
const EXPECTED: Record<string, { provider: string; model: string; warning: string }> = {
  'claude-code': { provider: 'openrouter', model: 'anthropic/claude-sonnet-4.6', warning: 'model_rewritten' },
  codex: { provider: 'openrouter', model: 'anthropic/claude-sonnet-4.6', warning: 'model_rewritten' },
  'gemini-cli': { provider: 'google', model: 'gemini-2.5-pro', warning: 'model_replaced' },
  opencode: { provider: 'openrouter', model: 'anthropic/claude-sonnet-4.6', warning: 'model_rewritten' },
  hermes: { provider: 'openrouter', model: 'anthropic/claude-sonnet-4.6', warning: 'model_rewritten' },
};

describe('one Jetty runbook on every runtime, changing only jetty.agent', () => {
  for (const runtime of listRuntimes()) {
    it(
      `${runtime.name}: completes, through the provider its routing picks, with the warning`,
      async () => {
        upstream.use(CLAUDE_RUNBOOK);
        const before = upstream.requests.length;
        const r = await runToEnd(CLAUDE_RUNBOOK, { agent: runtime.name });
        expect(r.status, JSON.stringify(r.json)).toBe(200);
        const want = EXPECTED[runtime.name]!;
        expect([r.run.agent, r.run.provider, r.run.model]).toEqual([runtime.name, want.provider, want.model]);
        expect(r.run.status).toBe('completed');
        expect(await artifact(r.runId, 'hello.txt')).toBe('hi');
        expect(r.run.warnings.map((w: any) => w.code)).toEqual([want.warning]);
        // The warning is on the run's stream (right after run.queued) and in the final answer.
        expect(r.events.filter((e) => e.type === 'run.warning').map((e) => e.data.code)).toEqual([
          want.warning,
        ]);
        expect(r.json.jetty_metadata.warnings).toEqual(r.run.warnings);
        // The calls went to the rewritten provider, with the collection's key for it.
        const calls = upstream.requests.slice(before);
        expect(calls.length).toBeGreaterThan(0);
        const prefix = `/${want.provider}/`;
        expect(
          calls.every((c) => c.path.startsWith(prefix)),
          JSON.stringify(calls),
        ).toBe(true);
        const key = want.provider === 'google' ? KEYS.GEMINI_API_KEY : KEYS.OPENROUTER_API_KEY;
        expect(calls.every((c) => c.credential === key)).toBe(true);
        expect(r.events.some((e) => e.type === 'usage' && e.data.source === 'gateway')).toBe(true);
        expect(JSON.stringify(r.events)).not.toContain(CANARY);
      },
      RUN_TIMEOUT_MS,
    );
  }
});

// The script writes the provider's answer and its own environment as artifacts: what a script in
// the sandbox can see is exactly what ends up checked here.
const SCRIPT_RUNBOOK = [
  '---',
  'version: "1.0.0"',
  'evaluation: programmatic',
  'agent: claude-code',
  'model_provider: simulated',
  'secrets:',
  '  OPENAI_API_KEY: { description: "The summarizer calls OpenAI itself", required: true }',
  '---',
  '# Summarize — Agent Runbook',
  '',
  '## REQUIRED OUTPUT FILES (MANDATORY)',
  '',
  '- `{{results_dir}}/summary.txt`',
  '',
  '```simulate',
  '- run: |',
  "    mkdir -p {{results_dir}} && cat > /app/summarize.mjs <<'EOF'",
  "    const res = await fetch(process.env.OPENAI_BASE_URL + '/chat/completions', {",
  "      method: 'POST',",
  "      headers: { authorization: 'Bearer ' + process.env.OPENAI_API_KEY, 'content-type': 'application/json' },",
  "      body: JSON.stringify({ model: 'gpt-5-mini', messages: [{ role: 'user', content: 'Summarize.' }] }),",
  '    });',
  '    const json = await res.json();',
  '    console.log(res.status, json.choices[0].message.content);',
  '    EOF',
  '    node /app/summarize.mjs > {{results_dir}}/summary.txt 2>&1; env > {{results_dir}}/env.txt',
  '- say: summarized',
  '```',
  '',
].join('\n');

describe('a provider key declared as a secret, used by a script in the sandbox', () => {
  it(
    'the script reaches OpenAI through the gateway with a per-run token; its usage counts; the key never enters',
    async () => {
      upstream.use('# no script: a call without tools gets a plain answer\n');
      const before = upstream.requests.length;
      const r = await runToEnd(SCRIPT_RUNBOOK);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(r.run.status).toBe('completed');

      // The script got the provider's answer.
      expect(await artifact(r.runId, 'summary.txt')).toMatch(/^200 Simulated run/);
      // The upstream saw the collection's real key, on OpenAI's path.
      const calls = upstream.requests.slice(before);
      expect(calls).toEqual([
        { method: 'POST', path: '/openai/v1/chat/completions', credential: KEYS.OPENAI_API_KEY },
      ]);

      // The sandbox saw a token and the forwarder's URL, never the key.
      const env = await artifact(r.runId, 'env.txt');
      expect(env).toMatch(/^OPENAI_API_KEY=jrt_[0-9a-f]{48}$/m);
      expect(env).toContain('OPENAI_BASE_URL=http://127.0.0.1:4100/v1');
      expect(env).not.toContain(CANARY);

      // Its usage is recorded as the script's, and the run's totals include it.
      const usage = r.events.filter((e) => e.type === 'usage');
      const script = usage.filter((e) => e.data.source === 'script');
      expect(script).toHaveLength(1);
      expect(script[0]!.data.input_tokens).toBeGreaterThan(0);
      const agentTokens = usage
        .filter((e) => e.data.source === 'gateway')
        .reduce((n, e) => n + e.data.input_tokens, 0);
      expect(r.run.usage.input_tokens).toBe(agentTokens + script[0]!.data.input_tokens);

      // Nowhere in what the server keeps.
      expect(JSON.stringify(r.events)).not.toContain(CANARY);
      expect(JSON.stringify(r.run)).not.toContain(CANARY);
      const jetty = await (
        await h.fetch(`${h.url}/api/v1/db/trajectory/${h.collection}/run/${r.runId}`)
      ).text();
      expect(jetty).not.toContain(CANARY);
    },
    RUN_TIMEOUT_MS,
  );
});
