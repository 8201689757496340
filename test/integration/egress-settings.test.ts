import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { claudeLines, ScriptedDriver } from '../support/scripted-driver.js';

// The egress policy at the API and in the worker: the collection's setting within the operator's,
// a runbook that narrows (or asks too much), what the sandbox is given, and the run's network
// summary. Real Redis and BullMQ; the sandbox is a scripted stand-in (the proxy has its own tests,
// and the e2e test runs a real CLI through it).
let h: Harness;
const driver = new ScriptedDriver(() => claudeLines({ steps: 1, delayMs: 0 }));

beforeAll(async () => {
  h = await startHarness({
    driver,
    env: { EGRESS_POLICY: 'allowlist', EGRESS_ALLOW: 'pypi.org,*.pythonhosted.org' },
  });
});
afterAll(async () => {
  await h?.stop();
});

async function inject(method: 'GET' | 'PATCH' | 'POST', url: string, payload?: unknown) {
  const res = await h.server.app!.inject({
    method,
    url,
    headers: { 'content-type': 'application/json', ...h.auth },
    ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
  });
  return { status: res.statusCode, body: res.json() as any };
}

const settings = (patch?: Record<string, unknown>) =>
  patch ? inject('PATCH', '/v1/collection/settings', patch) : inject('GET', '/v1/collection/settings');
const run = (runbook: string, jetty: Record<string, unknown> = {}) =>
  inject(
    'POST',
    '/v1/chat/completions',
    runbookRequest(runbook, { stream: false, jetty: { timeout_hint: 30, ...jetty } }),
  );

describe('a collection’s egress setting', () => {
  it('shows the server’s policy, and takes it while the collection sets none', async () => {
    const res = await settings();
    expect(res.body).toMatchObject({
      egress_policy: null,
      egress_allow: [],
      server_egress: { mode: 'allowlist', allow: ['pypi.org', '*.pythonhosted.org'] },
      effective_egress: { mode: 'allowlist', allow: ['pypi.org', '*.pythonhosted.org'] },
    });
  });

  it('may narrow it; widening is a 400 naming the field and EGRESS_POLICY, and changes nothing', async () => {
    const open = await settings({ egress_policy: 'open', default_max_tokens: 1000 });
    expect(open.status).toBe(400);
    expect(open.body.error).toMatchObject({ param: 'egress_policy', code: 'egress_over_maximum' });
    expect(open.body.error.message).toContain('EGRESS_POLICY');
    const wider = await settings({ egress_policy: 'allowlist', egress_allow: ['*.npmjs.org'] });
    expect(wider.body.error).toMatchObject({ param: 'egress_allow', code: 'egress_over_maximum' });
    // The budget field of the refused change was not applied either.
    expect((await settings()).body).toMatchObject({ default_max_tokens: null, egress_policy: null });

    const ok = await settings({ egress_policy: 'allowlist', egress_allow: ['files.pythonhosted.org'] });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({
      egress_policy: 'allowlist',
      egress_allow: ['files.pythonhosted.org'],
      effective_egress: { mode: 'allowlist', allow: ['files.pythonhosted.org'] },
    });
  });
});

describe('a run’s network', () => {
  it('gets the collection’s policy through the proxy variables, narrowed by the runbook, with a warning for what was cut', async () => {
    const before = driver.started.length;
    const runbook = '---\nagent: claude-code\nnetwork: open\n---\n# Task\nSay hi.\n';
    const res = await run(runbook);
    expect(res.status).toBe(200);
    const meta = res.body.jetty_metadata;
    expect(meta.warnings).toEqual([
      expect.objectContaining({
        code: 'network_narrowed',
        message: expect.stringContaining(
          'asks for open network, but collection test-collection’s egress_policy is allowlist (files.pythonhosted.org)',
        ),
      }),
    ]);
    expect(meta.network).toEqual({
      policy: 'allowlist',
      allow: ['files.pythonhosted.org'],
      connections: 0,
      allowed: 0,
      refused: 0,
      failed: 0,
      bytes_up: 0,
      bytes_down: 0,
      hosts: [],
    });
    const env = driver.started[before]!.env;
    expect(env.HTTPS_PROXY).toMatch(/^http:\/\/jetty:jeg_[0-9a-f]{48}@127\.0\.0\.1:4100$/);
    expect(env.http_proxy).toBe(env.HTTPS_PROXY);
    expect(env.NO_PROXY).toBe('127.0.0.1,localhost');
    // Never the provider token.
    expect(env.HTTPS_PROXY).not.toContain(env.ANTHROPIC_API_KEY ?? 'jrt_');
    const rec = await inject('GET', `/v1/runs/${meta.trajectory_id}`);
    expect(rec.body.network).toEqual(meta.network);
  });

  it('with network_enabled false has no proxy at all, and a runbook that installs things is warned', async () => {
    const before = driver.started.length;
    const runbook = '---\nagent: claude-code\n---\n# Setup\n```bash\npip install pandas\n```\n';
    const res = await run(runbook, { network_enabled: false });
    expect(res.status).toBe(200);
    const meta = res.body.jetty_metadata;
    expect(meta.warnings).toEqual([
      {
        code: 'network_needed',
        message: expect.stringContaining(
          'The runbook fetches from the network (pip install), but this run has none: its egress policy is none (set by jetty.network_enabled)',
        ),
      },
    ]);
    expect(meta.network).toMatchObject({ policy: 'none', connections: 0 });
    const env = driver.started[before]!.env;
    for (const v of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'])
      expect(env[v]).toBeUndefined();
  });

  it('refuses a runbook whose network frontmatter is malformed, naming it', async () => {
    const res = await run('---\nnetwork: ["*"]\n---\n# Task\n');
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain(
      'frontmatter `network` must be none, open, true, or a list of host patterns',
    );
  });
});
