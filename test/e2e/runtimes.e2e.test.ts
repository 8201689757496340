import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listRuntimes } from '../../src/runtimes/registry.js';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { sandboxesLeft } from '../support/sandboxes.js';

// The same runbook on every registered runtime, each in its own real container with the real CLI
// and the simulated provider speaking that CLI's wire protocol. Changing one line (frontmatter
// `agent:` or `jetty.agent`) moves it; the events and the artifact come out the same.
const docker = new Dockerode();
let h: Harness;

const HELLO_TOKEN = `tok-${Date.now().toString(36)}-value`;

beforeAll(async () => {
  h = await startHarness();
  await h.setEnv({ HELLO_TOKEN });
}, 120_000);
afterEach(async () => {
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left).toEqual([]);
});
afterAll(async () => {
  await h?.stop();
});

const BODY = [
  '# Hello',
  '',
  '## REQUIRED OUTPUT FILES',
  '- `{{results_dir}}/hello.txt`',
  '',
  '```simulate',
  '- say: Writing hello.txt now.',
  '- run: mkdir -p {{results_dir}} && printf hi > {{results_dir}}/hello.txt',
  '- say: wrote hello.txt',
  '```',
  '',
].join('\n');

interface Ev {
  type: string;
  data: Record<string, unknown>;
}

async function runToEnd(body: unknown) {
  const res = await h.postJson(`${h.url}/v1/chat/completions`, body);
  const json = (await res.json()) as {
    jetty_metadata: { trajectory_id: string; status: string };
    error?: { message: string };
  };
  const runId = json.jetty_metadata.trajectory_id;
  const traj = (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as {
    run: Record<string, any>;
    events: Ev[];
  };
  return { status: res.status, json, runId, run: traj.run, events: traj.events };
}

function expectAgentActivity(events: Ev[]) {
  const calls = events.filter((e) => e.type === 'tool.call');
  const results = events.filter((e) => e.type === 'tool.result');
  expect(calls.length).toBeGreaterThanOrEqual(1);
  const ids = new Set(results.map((r) => r.data.call_id));
  expect(calls.some((c) => ids.has(c.data.call_id))).toBe(true);
  expect(events.some((e) => e.type === 'agent.message')).toBe(true);
  expect(events.some((e) => e.type === 'usage')).toBe(true);
}

for (const runtime of listRuntimes()) {
  describe(`${runtime.name} (${runtime.cliPackage} ${runtime.cliVersion})`, () => {
    it('runs the hello runbook selected by frontmatter, its declared secret in the agent’s shell', async () => {
      const runbook = [
        '---',
        `agent: ${runtime.name}`,
        'secrets:',
        '  HELLO_TOKEN: { env: HELLO_TOKEN, required: true }',
        '---',
        BODY.replace(
          '- say: wrote hello.txt',
          '- run: printf %s "$HELLO_TOKEN" > {{results_dir}}/token.txt\n- say: wrote hello.txt',
        ),
      ].join('\n');
      const r = await runToEnd(runbookRequest(runbook, { stream: false, model: 'default' }));
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(r.run.agent).toBe(runtime.name);
      expect(r.run.status).toBe('completed');
      expectAgentActivity(r.events);
      const file = await h.fetch(`${h.url}/v1/runs/${r.runId}/artifacts/hello.txt`);
      expect(await file.text()).toBe('hi');
      // The secret reached the shell the agent's tools run in (the file is the agent's own output).
      expect(await (await h.fetch(`${h.url}/v1/runs/${r.runId}/artifacts/token.txt`)).text()).toBe(
        HELLO_TOKEN,
      );
      expect(JSON.stringify(r.events)).not.toContain(HELLO_TOKEN);
    });

    it('runs the same runbook selected by jetty.agent', async () => {
      const r = await runToEnd(
        runbookRequest(BODY, { stream: false, model: 'default', jetty: { agent: runtime.name } }),
      );
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(r.run.agent).toBe(runtime.name);
      expectAgentActivity(r.events);
      expect(await (await h.fetch(`${h.url}/v1/runs/${r.runId}/artifacts/hello.txt`)).text()).toBe('hi');
    });

    it('fails within 15 s with the cause when the provider answers 401', async () => {
      const t0 = Date.now();
      const r = await runToEnd(
        runbookRequest('# Fails\n```simulate\n- fail: 401\n```\n', {
          stream: false,
          model: 'default',
          jetty: { agent: runtime.name },
        }),
      );
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(r.status).toBe(424);
      expect(r.run.status).toBe('failed');
      expect(r.run.error.message).toMatch(/401/);
    });

    it('fails within 15 s when the provider keeps answering 500 (retries are bounded)', async () => {
      const t0 = Date.now();
      const r = await runToEnd(
        runbookRequest('# Fails\n```simulate\n- fail: 500\n```\n', {
          stream: false,
          model: 'default',
          jetty: { agent: runtime.name },
        }),
      );
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(r.run.status).toBe('failed');
      expect(r.run.error.code).toMatch(/^provider_/);
    });
  });
}
