import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, Socket } from 'node:net';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, runbookRequest, startHarness } from '../support/harness.js';
import { makeWheel, type PackageIndex, servePackageIndex } from '../support/package-index.js';
import { sandboxesLeft } from '../support/sandboxes.js';

// The issue's "done means": a runbook written the way Jetty's runbooks are (snapshot python312-uv,
// programmatic evaluation, a Dependencies table, a setup step with `pip install`, Python that
// writes its outputs, REQUIRED OUTPUT FILES, a Final Checklist with a Verification Script) runs
// its setup for real: the real claude and codex CLIs in the python312-uv sandbox (--network none),
// the simulated model calling their shell tools with the runbook's own commands, pip reaching a
// package index through the worker's egress proxy (HTTP_PROXY, as any user's pip does), then the
// server running the verification script in that sandbox.
//
// The index is made here: a one-module wheel written by the test and a PEP 503 simple index on a
// loopback address, so no packet leaves this machine. The operator lets runs reach that index and
// nothing else (EGRESS_POLICY=allowlist naming it, NETWORK_ALLOW_PRIVATE for its loopback address,
// its port in EGRESS_PORTS), and the proxy dials through a guard that refuses anything off
// loopback. The wheel carries a value drawn now, so an output holding it was written by Python that
// imported the package pip installed in that run (nothing else has the value).
const run = promisify(execFile);
const docker = new Dockerode();
const INDEX_HOST = '127.0.0.2';
const BUILD = randomBytes(6).toString('hex');
const PROJECT = 'jetty-textstats';

const wheel = makeWheel(PROJECT, '1.0.0', {
  'jetty_textstats/__init__.py': [
    '"""Word statistics (a package made by a test)."""',
    '__version__ = "1.0.0"',
    `BUILD = "${BUILD}"`,
    '',
    '',
    'def word_counts(text):',
    '    counts = {}',
    '    for word in text.lower().split():',
    '        counts[word] = counts.get(word, 0) + 1',
    '    return counts',
    '',
  ].join('\n'),
});

/** Step 2's Python, as the runbook shows it and as the (simulated) agent runs it. */
const COUNT_PY = [
  'import json',
  'import pathlib',
  '',
  'import jetty_textstats',
  '',
  'out = pathlib.Path("{{results_dir}}")',
  'counts = jetty_textstats.word_counts("{{text}}")',
  'report = {',
  '    "package": "jetty-textstats",',
  '    "version": jetty_textstats.__version__,',
  '    "build": jetty_textstats.BUILD,',
  '    "module": jetty_textstats.__file__,',
  '    "counts": counts,',
  '}',
  '(out / "word_counts.json").write_text(json.dumps(report, indent=2) + "\\n")',
  'top = max(counts, key=counts.get)',
  'total = sum(counts.values())',
  '(out / "summary.md").write_text(f"# Word statistics\\n\\n{total} words, {len(counts)} distinct; most frequent: {top}.\\n")',
  'print(f"wrote word_counts.json and summary.md ({total} words)")',
];

/**
 * The runbook. It declares `PIP_INDEX_URL` as an optional secret, the way a runbook author lets an
 * operator point pip at a mirror or a private index (whose URL often carries a token: hence a
 * secret, redacted from the run's events) without touching the setup step: pip reads
 * PIP_INDEX_URL itself, so the step stays the plain `pip install jetty-textstats` Jetty's runbooks
 * write, and where the variable is not set pip uses its own default index. The collection sets it
 * to the test's index; no flag or path in the runbook names the test.
 */
const RUNBOOK = [
  '---',
  'version: "1.0.0"',
  'evaluation: programmatic',
  'snapshot: python312-uv',
  'primary_outputs:',
  '  - summary.md',
  'secrets:',
  '  PIP_INDEX_URL: { description: "The package index pip installs from, when not its default", required: false }',
  '---',
  '# Word Statistics — Agent Runbook',
  '',
  '## Objective',
  '',
  'Count the words of a text with the jetty-textstats package and write the counts and a summary.',
  '',
  '## REQUIRED OUTPUT FILES (MANDATORY)',
  '',
  '**You MUST write all of the following files. The task is NOT complete until every file exists and is non-empty.**',
  '',
  '| File | Description |',
  '|------|-------------|',
  '| `{{results_dir}}/word_counts.json` | Count per word, and the package that counted |',
  '| `{{results_dir}}/summary.md` | A short summary |',
  '| `{{results_dir}}/validation_report.json` | Validation results |',
  '',
  '## Parameters',
  '',
  '| Parameter | Template Variable | Default | Description |',
  '|-----------|-------------------|---------|-------------|',
  '| Results directory | `{{results_dir}}` | `/app/results` | Where outputs go |',
  '| Text | `{{text}}` | `the cat and the hat and the bat` | The text to count |',
  '',
  '## Dependencies',
  '',
  '| Dependency | Type | Purpose |',
  '|------------|------|---------|',
  '| Python 3.12 | runtime | runs the steps |',
  '| pip | tool | installs the package |',
  '| jetty-textstats | Python package | counts the words |',
  '',
  '## Step 1: Environment Setup',
  '',
  '```bash',
  'mkdir -p {{results_dir}}',
  'pip install jetty-textstats',
  '```',
  '',
  '## Step 2: Count',
  '',
  '```python',
  ...COUNT_PY,
  '```',
  '',
  '## Step 3: Write Validation Report',
  '',
  'Write `{{results_dir}}/validation_report.json` with `overall_passed` and the results of the checks below.',
  '',
  '## Step 4: Final Checklist (MANDATORY — do not skip)',
  '',
  '### Verification Script',
  '',
  '```bash',
  'echo "=== FINAL OUTPUT VERIFICATION ==="',
  'for f in word_counts.json summary.md validation_report.json; do',
  '  if [ -s "{{results_dir}}/$f" ]; then echo "PASS: $f ($(wc -c < "{{results_dir}}/$f") bytes)"; else echo "FAIL: $f is missing or empty"; fi',
  'done',
  "python3 - <<'EOF'",
  'import json',
  'try:',
  '    import jetty_textstats',
  'except ImportError as e:',
  '    print(f"FAIL: jetty-textstats is not installed ({e})")',
  '    raise SystemExit(1)',
  'data = json.load(open("{{results_dir}}/word_counts.json"))',
  'if data.get("build") == jetty_textstats.BUILD and data.get("counts", {}).get("the") == 3:',
  '    print(f"PASS: word_counts.json was made by jetty-textstats {jetty_textstats.__version__}")',
  'else:',
  '    print("FAIL: word_counts.json was not made by the installed jetty-textstats")',
  'EOF',
  '```',
  '',
  // The agent's tool calls, as a model following the runbook would make them: step 1's commands,
  // step 2's Python, its report.
  '```simulate',
  '- say: Step 1, environment setup.',
  '- run: |',
  '    mkdir -p {{results_dir}}',
  '    pip install jetty-textstats 2>&1 | tee {{results_dir}}/pip-install.log',
  '- run: |',
  "    python3 - <<'EOF'",
  ...COUNT_PY.map((l) => (l === '' ? '' : `    ${l}`)),
  '    EOF',
  '- run: |',
  `    printf '{"overall_passed": true, "results": {"pass": 4, "partial": 0, "fail": 0}}\\n' > {{results_dir}}/validation_report.json`,
  '- say: Installed jetty-textstats, wrote word_counts.json, summary.md and my validation report.',
  '```',
  '',
].join('\n');

interface Ev {
  type: string;
  data: Record<string, any>;
}

async function cleanUp(h: Harness): Promise<void> {
  // Warm sandboxes no run has claimed stay with the pool (the harness checks they go at its stop);
  // a run's own is removed just after its end.
  const runs = await sandboxesLeft(docker, h.instance);
  for (const c of runs) await docker.getContainer(c.Id).remove({ force: true });
  expect(runs.filter((c) => c.Labels['jetty.probe'] !== 'true').map((c) => c.Names)).toEqual([]);
}

async function runToEnd(h: Harness, runbook: string, jetty: Record<string, unknown>) {
  const res = await h.postJson(
    `${h.url}/v1/chat/completions`,
    runbookRequest(runbook, { stream: false, model: 'default', jetty }),
  );
  const json = (await res.json()) as Record<string, any>;
  expect(res.status, JSON.stringify(json)).toBe(200);
  const runId = json.jetty_metadata?.trajectory_id as string;
  const traj = (await (await h.fetch(`${h.url}/v1/runs/${runId}/trajectory`)).json()) as {
    run: Record<string, any>;
    events: Ev[];
  };
  const artifact = async (name: string) => {
    const r = await h.fetch(`${h.url}/v1/runs/${runId}/artifacts/${name}`);
    expect(r.status, `${name} of run ${runId}`).toBe(200);
    return r.text();
  };
  return { meta: json.jetty_metadata as Record<string, any>, run: traj.run, events: traj.events, artifact };
}

describe('a Jetty-style runbook on python312-uv, its pip install through the egress proxy', () => {
  let h: Harness;
  let index: PackageIndex;
  const dialed: string[] = [];

  beforeAll(async () => {
    index = await servePackageIndex(INDEX_HOST, [wheel]);
    h = await startHarness({
      env: {
        EGRESS_POLICY: 'allowlist',
        EGRESS_ALLOW: INDEX_HOST,
        EGRESS_PORTS: `80,443,${index.port}`,
        NETWORK_ALLOW_PRIVATE: INDEX_HOST,
      },
      egressConnect: (t) => {
        dialed.push(t.address);
        if (t.address.startsWith('127.')) return connect({ host: t.address, port: t.port });
        const s = new Socket();
        process.nextTick(() => s.destroy(new Error('test guard: off loopback')));
        return s;
      },
    });
    await h.setEnv({ PIP_INDEX_URL: index.url });
  }, 120_000);
  afterEach(() => cleanUp(h));
  afterAll(async () => {
    await h?.stop();
    await index?.close();
  });

  for (const agent of ['claude-code', 'codex']) {
    it(`runs its setup for real on ${agent}: installed, imported, outputs written, verified`, async () => {
      const hitsBefore = index.hits.length;
      // `network_enabled: true` is what Jetty's step configs send: "what the collection gives".
      const r = await runToEnd(h, RUNBOOK, { agent, network_enabled: true });
      expect(r.run.status, JSON.stringify(r.run.error)).toBe('completed');
      expect(r.events.find((e) => e.type === 'run.started')?.data.image).toBe('jetty/env-python312-uv:1');

      // pip found the package on the index, through the proxy, and installed it in the sandbox.
      const log = await r.artifact('pip-install.log');
      expect(log).toContain('Successfully installed jetty-textstats-1.0.0');
      const hits = index.hits.slice(hitsBefore);
      expect(hits).toContain('/simple/jetty-textstats/');
      expect(hits).toContain(`/files/${wheel.filename}`);
      expect(dialed.filter((a) => !a.startsWith('127.'))).toEqual([]);

      // Each request pip made is a net.connect event of this run, allowed, to the index.
      const net = r.events.filter((e) => e.type === 'net.connect').map((e) => e.data);
      expect(net.length).toBeGreaterThanOrEqual(2);
      for (const d of net) {
        expect(d).toMatchObject({
          host: INDEX_HOST,
          port: index.port,
          outcome: 'allowed',
          address: INDEX_HOST,
        });
      }
      expect(net.reduce((n, d) => n + d.bytes_down, 0)).toBeGreaterThan(wheel.bytes.length);
      // The index's URL was given as a secret: the run's events show pip's output without it.
      const pipResult = r.events.find(
        (e) => e.type === 'tool.result' && /Looking in indexes/.test(e.data.output),
      );
      expect(pipResult?.data.output).toContain('Looking in indexes: [redacted:PIP_INDEX_URL]');
      expect(r.meta.network).toMatchObject({
        policy: 'allowlist',
        allow: [INDEX_HOST],
        allowed: net.length,
        refused: 0,
        failed: 0,
      });

      // The outputs were written by Python that imported the installed package: only the wheel
      // served in this test has BUILD, and the module lives in the sandbox user's site-packages.
      const counts = JSON.parse(await r.artifact('word_counts.json'));
      expect(counts).toMatchObject({
        package: PROJECT,
        version: '1.0.0',
        build: BUILD,
        counts: { the: 3, and: 2, cat: 1, hat: 1, bat: 1 },
      });
      expect(counts.module).toMatch(
        /^\/home\/agent\/\.local\/lib\/python3\.\d+\/site-packages\/jetty_textstats\//,
      );
      expect(await r.artifact('summary.md')).toContain('8 words, 5 distinct; most frequent: the.');

      // The server ran the runbook's verification script in that sandbox, and it passed.
      const evaluation = r.meta.evaluation;
      expect(evaluation, JSON.stringify(evaluation)).toMatchObject({
        kind: 'programmatic',
        passed: true,
        source: 'verification_script',
        results: { pass: 4, partial: 0, fail: 0 },
      });
      expect(JSON.stringify(evaluation.stages)).toContain(
        'word_counts.json was made by jetty-textstats 1.0.0',
      );
      expect(r.run.evaluation).toMatchObject({ passed: true });

      // The environment had what the runbook calls, and its network was not found wanting.
      const codes = ((r.meta.warnings ?? []) as { code: string }[]).map((w) => w.code);
      expect(codes).not.toContain('environment_missing');
      expect(codes).not.toContain('network_needed');
      expect(
        r.events.filter((e) => e.type === 'run.warning' && e.data.code === 'environment_missing'),
      ).toEqual([]);
    }, 240_000);
  }

  it('with its network switched off, the same run tells the user: network_needed, and a failing verification', async () => {
    const hitsBefore = index.hits.length;
    const r = await runToEnd(h, RUNBOOK, { agent: 'claude-code', network_enabled: false });
    // The agent finished its script, so the run completes; the evaluation says what it is worth.
    expect(r.run.status).toBe('completed');
    const codes = ((r.meta.warnings ?? []) as { code: string }[]).map((w) => w.code);
    expect(codes).toContain('network_needed');
    expect(codes).not.toContain('environment_missing');
    expect(r.events.filter((e) => e.type === 'net.connect')).toEqual([]);
    expect(index.hits.length).toBe(hitsBefore);
    expect(r.meta.network).toMatchObject({ policy: 'none', connections: 0 });
    expect(r.meta.evaluation).toMatchObject({
      kind: 'programmatic',
      passed: false,
      source: 'verification_script',
      disagreement: true,
    });
    expect(r.meta.evaluation.verification.output).toContain('FAIL: jetty-textstats is not installed');
  }, 240_000);
});

// One real `pip download` from the package index this machine's pip is configured with, from a
// python312-uv sandbox through the proxy. It leaves loopback, which tests in CI must not, so it
// runs only when asked: JETTY_TEST_REAL_INDEX=1. The index is read from pip's own configuration
// (`pip config list`, else the default `pip download --help` names); no host is named here.
const REAL_INDEX = process.env.JETTY_TEST_REAL_INDEX === '1';
if (!REAL_INDEX) {
  console.info(
    'jetty-runbook.e2e: the real package index test is skipped: it leaves loopback; set JETTY_TEST_REAL_INDEX=1 to run it',
  );
}

/** The index URL pip is configured with here (null: pip's default), and its host. */
async function pipIndex(): Promise<{ configured: string | null; host: string }> {
  const { stdout: config } = await run('pip', ['config', 'list']);
  const configured = /(?:^|\n)[^\n]*\.index-url='([^']+)'/.exec(config)?.[1] ?? null;
  if (configured) return { configured, host: new URL(configured).hostname };
  const { stdout: help } = await run('pip', ['download', '--help']);
  const def = /--index-url <url>[\s\S]*?\(default\s+(https?:\/\/[^)\s]+)\)/.exec(help)?.[1];
  if (!def) throw new Error('pip reports no index URL (pip config list, pip download --help)');
  return { configured: null, host: new URL(def).hostname };
}

describe.skipIf(!REAL_INDEX)('pip download from the configured index, through the proxy (opt-in)', () => {
  let h: Harness;

  beforeAll(async () => {
    // The real resolver and real connections; nothing private is allowed.
    h = await startHarness({ env: { EGRESS_POLICY: 'open' } });
  }, 120_000);
  afterEach(() => cleanUp(h));
  afterAll(async () => {
    await h?.stop();
  });

  const DOWNLOAD = [
    '---',
    'snapshot: python312-uv',
    'secrets:',
    '  PIP_INDEX_URL: { description: "The package index pip installs from, when not its default", required: false }',
    '---',
    '# Download',
    '',
    '```simulate',
    '- run: |',
    '    mkdir -p {{results_dir}}/wheels && cd {{results_dir}}',
    '    pip download six --no-deps --only-binary :all: --retries 0 --timeout 30 -d wheels > pip.log 2>&1; echo "exit $?" >> pip.log',
    '    ls wheels > downloaded.txt',
    '- say: done',
    '```',
    '',
  ].join('\n');

  const settings = (allow: string[]) =>
    h.fetch(`${h.url}/v1/collection/settings`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ egress_policy: 'allowlist', egress_allow: allow }),
    });

  it('downloads a small package with only the index host allowed, then the hosts the refusals named', async () => {
    const index = await pipIndex();
    if (index.configured) await h.setEnv({ PIP_INDEX_URL: index.configured });
    // First the index host alone (the collection narrows the operator's `open`); the files may
    // live on another host, which the refusals name: the operator's way of reading the audit.
    expect((await settings([index.host])).status).toBe(200);
    const started = Date.now();
    let r = await runToEnd(h, DOWNLOAD, { agent: 'claude-code' });
    const lines: string[] = [];
    const record = (run: number) =>
      r.events
        .filter((e) => e.type === 'net.connect')
        .map((e) => {
          const d = e.data;
          lines.push(
            `  run ${run}: ${d.host}:${d.port} ${d.outcome}${d.code ? ` ${d.code}` : ''}, ${d.bytes_up} B up, ${d.bytes_down} B down, ${d.ms} ms`,
          );
          return d;
        });
    let net = record(1);
    const refused = [...new Set(net.filter((d) => d.code === 'not_allowed').map((d) => d.host as string))];
    if (!(await r.artifact('downloaded.txt')).includes('six-')) {
      expect(refused.length, await r.artifact('pip.log')).toBeGreaterThan(0);
      expect((await settings([index.host, ...refused])).status).toBe(200);
      r = await runToEnd(h, DOWNLOAD, { agent: 'claude-code' });
      net = record(2);
    }
    const downloaded = await r.artifact('downloaded.txt');
    expect(downloaded, await r.artifact('pip.log')).toMatch(/^six-.*\.whl$/m);
    console.info(
      `real index (${new Date().toISOString()}, ${Date.now() - started} ms): ${downloaded.trim()}\n${lines.join('\n')}`,
    );
    const allowed = net.filter((d) => d.outcome === 'allowed');
    expect(allowed.map((d) => d.host)).toContain(index.host);
    for (const d of allowed) {
      expect(d).toMatchObject({ kind: 'connect', port: 443 });
      expect(d.bytes_down).toBeGreaterThan(0);
    }
  }, 300_000);
});
