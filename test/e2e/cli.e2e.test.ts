import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cuttingProxy } from '../support/cutting-proxy.js';
import { type Harness, runbookRequest, startHarness, waitFor } from '../support/harness.js';
import { sandboxesLeft } from '../support/sandboxes.js';

// The `jetty` CLI as a user runs it: the compiled bin in a child process with stdin and stdout not
// terminals, against a real server (real Redis, Docker, the claude CLI in its image, the simulated
// model). It reaches the server over HTTP only.
const CLI = path.resolve(import.meta.dirname, '../../dist/src/main/cli.js');
const docker = new Dockerode();
let h: Harness;
let cwd: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  h = await startHarness();
}, 120_000);

afterEach(async () => {
  const left = await sandboxesLeft(docker, h.instance);
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
  if (cwd) await rm(cwd, { recursive: true, force: true });
  cwd = '';
});

afterAll(async () => {
  await h?.stop();
});

interface Cli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  done: Promise<number>;
}

/** The CLI in a fresh working directory, its key in the environment (as docs/cli.md advises). */
async function cli(args: string[], opts: { server?: string } = {}): Promise<Cli> {
  cwd ||= await mkdtemp(path.join(tmpdir(), 'jetty-cli-'));
  const child = spawn(process.execPath, [CLI, ...args, '--server', opts.server ?? h.url], {
    cwd,
    env: { PATH: process.env.PATH, JETTY_API_KEY: h.key },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const done = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  return { child, stdout: () => out, stderr: () => err, done };
}

async function writeRunbook(name: string, text: string): Promise<string> {
  cwd ||= await mkdtemp(path.join(tmpdir(), 'jetty-cli-'));
  const file = path.join(cwd, name);
  await writeFile(file, text);
  return file;
}

const runbook = (steps: string[]) =>
  [
    '---',
    'agent: claude-code',
    'model_provider: simulated',
    '---',
    '# CLI test',
    '',
    '```simulate',
    ...steps,
    '```',
    '',
  ].join('\n');

const getJson = async (url: string): Promise<any> => (await h.fetch(url)).json();

const runIdOf = (out: string) => /^run (\S+) /m.exec(out)?.[1];

describe('jetty run', () => {
  it('shows progress as plain lines, saves the artifacts with their bytes, exits 0', async () => {
    await writeRunbook('input.csv', 'a,b\n1,2\n');
    const file = await writeRunbook(
      'hello.md',
      runbook([
        '- say: I will write hello.txt.',
        '- run: mkdir -p /app/results && printf "{{greeting}}" > /app/results/hello.txt && cp /app/assets/input.csv /app/results/copy.csv',
        '- say: wrote hello.txt',
      ]),
    );
    const c = await cli(['run', file, '--var', 'greeting=hi there', '--file', 'input.csv']);
    const code = await c.done;
    const out = c.stdout();
    expect(c.stderr()).toBe('');
    expect(code).toBe(0);
    const id = runIdOf(out)!;
    expect(id).toBeTruthy();
    const lines = out.split('\n');
    expect(lines).toContain('I will write hello.txt.');
    expect(lines).toContain('wrote hello.txt');
    // One line per tool call: the tool's name and its command.
    expect(lines.filter((l) => l.startsWith('→ '))).toEqual([
      expect.stringMatching(/^→ Bash: mkdir -p \/app\/results/),
    ]);
    expect(out).toMatch(/^✓ completed in \d+(\.\d)?s · \d+(\.\dk)? tokens · ~?\$\d/m);
    expect(out).toMatch(/^uploaded 1 file\(s\)/m);
    expect(out).toContain(`saved 2 artifact(s) in results/${id}/`);
    // Not a terminal: no escape sequences, no carriage returns.
    expect(out.includes('\r') || out.includes('\u001b')).toBe(false);
    expect(await readFile(path.join(cwd, 'results', id, 'hello.txt'), 'utf8')).toBe('hi there');
    expect(await readFile(path.join(cwd, 'results', id, 'copy.csv'), 'utf8')).toBe('a,b\n1,2\n');

    // The same run in `jetty runs`, filtered by status.
    const list = await cli(['runs', '--status', 'completed']);
    expect(await list.done).toBe(0);
    expect(list.stdout()).toMatch(new RegExp(`^${id}\\s+completed\\s+claude-code\\s`, 'm'));
  });

  it('a failing run exits 1 and says why', async () => {
    const file = await writeRunbook('fails.md', runbook(['- fail: 401']));
    const c = await cli(['run', file, '--no-download']);
    expect(await c.done).toBe(1);
    expect(c.stdout()).toMatch(/^✗ failed after .*: \S+: .*401/m);
  });

  it('--json prints every event once, as one JSON object per line, in stream order', async () => {
    const file = await writeRunbook('json.md', runbook(['- run: echo hi', '- say: done']));
    const c = await cli(['run', file, '--json']);
    expect(await c.done).toBe(0);
    const events = c
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events[0].type).toBe('run.queued');
    expect(events.at(-1).type).toBe('run.completed');
    expect(events.map((e) => e.type)).toContain('tool.call');
    const id = /^run (\S+) /m.exec(c.stderr())![1]!;
    const traj = await getJson(`${h.url}/v1/runs/${id}/trajectory`);
    expect(events.map((e) => e.id)).toEqual(traj.events.map((e: { id: string }) => e.id));

    // `jetty logs` (without -f) shows the finished run as `jetty run` did.
    const logs = await cli(['logs', id]);
    expect(await logs.done).toBe(0);
    expect(logs.stdout()).toMatch(/^→ Bash: echo hi$/m);
    expect(logs.stdout()).toMatch(/^✓ completed in /m);
  });

  it('SIGINT with stdin not a terminal cancels the run without asking; exits 3', async () => {
    const file = await writeRunbook(
      'slow.md',
      runbook(['- run: echo started', '- sleep_ms: 30000', '- say: too late']),
    );
    const c = await cli(['run', file, '--no-download']);
    await waitFor(async () => /^→ /m.test(c.stdout()), 60_000, 'the first tool call');
    const id = runIdOf(c.stdout())!;
    c.child.kill('SIGINT');
    expect(await c.done).toBe(3);
    expect(c.stderr()).toContain(`cancelling run ${id}`);
    expect(c.stdout()).toMatch(/^■ cancelled after /m);
    const rec = await getJson(`${h.url}/v1/runs/${id}`);
    expect(rec.status).toBe('cancelled');
  });
});

/**
 * A runbook the server scores (docs/evaluation.md): the agent writes {{answer}} to answer.txt; the
 * verification script passes when the file exists and holds 42.
 */
const evaluated = (frontmatter: string[] = []) =>
  [
    '---',
    'agent: claude-code',
    'model_provider: simulated',
    'evaluation: programmatic',
    ...frontmatter,
    '---',
    '# The answer — Agent Runbook',
    '',
    '## Final Checklist',
    '',
    '### Verification Script',
    '',
    '```bash',
    'f="{{results_dir}}/answer.txt"',
    'if [ -s "$f" ]; then echo "PASS: answer.txt written"; else echo "FAIL: answer.txt missing"; fi',
    'if [ "$(cat "$f" 2>/dev/null)" = "42" ]; then echo "PASS: the answer is 42"; else echo "FAIL: the answer is not 42"; fi',
    '```',
    '',
    '```simulate',
    "- run: mkdir -p {{results_dir}} && printf '%s' '{{answer}}' > {{results_dir}}/answer.txt",
    '- say: Wrote the answer.',
    '```',
    '',
  ].join('\n');

describe('jetty run with an evaluated runbook', () => {
  it('prints the evaluation as its last line; a passing run exits 0, and `jetty runs` shows it too', async () => {
    const file = await writeRunbook('answer.md', evaluated());
    const c = await cli(['run', file, '--var', 'answer=42']);
    const code = await c.done;
    const out = c.stdout();
    expect(c.stderr()).toBe('');
    expect(code).toBe(0);
    const id = runIdOf(out)!;
    const lines = out.trimEnd().split('\n');
    expect(lines.findIndex((l) => l.startsWith('✓ completed in '))).toBeGreaterThan(0);
    expect(lines.at(-1)).toBe(
      'evaluation: passed · score 1 · The verification script passed: 2 of 2 checks passed.',
    );
    // The line says what the run's record says.
    const rec = await getJson(`${h.url}/v1/runs/${id}`);
    expect(rec.evaluation).toMatchObject({ kind: 'programmatic', passed: true, score: 1 });
    expect(await readFile(path.join(cwd, 'results', id, 'answer.txt'), 'utf8')).toBe('42');

    const list = await cli(['runs']);
    expect(await list.done).toBe(0);
    expect(list.stdout()).toMatch(new RegExp(`^${id}\\s+completed\\s.*\\spassed · score 1 · `, 'm'));
  });

  it('a failed evaluation is printed, but the run completed, so it exits 0', async () => {
    const file = await writeRunbook('answer.md', evaluated());
    const c = await cli(['run', file, '--var', 'answer=41', '--no-download']);
    expect(await c.done).toBe(0);
    const lines = c.stdout().trimEnd().split('\n');
    expect(lines).toContainEqual(expect.stringMatching(/^✓ completed in /));
    expect(lines.at(-1)).toBe(
      'evaluation: not passed · score 0.5 · The verification script reported 1 failed check of 2.',
    );
  });

  it('under require_pass a failed evaluation fails the run: it says why, prints the evaluation, exits 1', async () => {
    const file = await writeRunbook('strict.md', evaluated(['require_pass: true']));
    const c = await cli(['run', file, '--var', 'answer=41', '--no-download']);
    expect(await c.done).toBe(1);
    const out = c.stdout();
    expect(out).toMatch(/^✗ failed after .*: evaluation_failed: .*require_pass/m);
    expect(out.trimEnd().split('\n').at(-1)).toBe(
      'evaluation: not passed · score 0.5 · The verification script reported 1 failed check of 2.',
    );
    const rec = await getJson(`${h.url}/v1/runs/${runIdOf(out)}`);
    expect(rec).toMatchObject({ status: 'failed', error: { code: 'evaluation_failed' } });

    // The same runbook passes when the answer is right: exit 0.
    const ok = await cli(['run', file, '--var', 'answer=42', '--no-download']);
    expect(await ok.done).toBe(0);
    expect(ok.stdout()).toMatch(/^evaluation: passed · score 1 · /m);
  });
});

describe('jetty cancel and jetty logs', () => {
  it('jetty cancel stops a running run', async () => {
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(runbook(['- run: echo started', '- sleep_ms: 30000']), {
        stream: false,
        jetty: { timeout_hint: 0 },
      }),
    );
    const id = ((await res.json()) as any).jetty_metadata.trajectory_id as string;
    await waitFor(
      async () => (await getJson(`${h.url}/v1/runs/${id}`)).status === 'running',
      60_000,
      'running',
    );
    const c = await cli(['cancel', id]);
    expect(await c.done).toBe(0);
    expect(c.stdout()).toMatch(new RegExp(`^run ${id}: (cancelled|running \\(cancel requested\\))$`, 'm'));
    const rec = await waitFor(
      async () => {
        const r = await getJson(`${h.url}/v1/runs/${id}`);
        return r.status === 'cancelled' && r;
      },
      30_000,
      'cancelled',
    );
    expect(rec.status).toBe('cancelled');
  });

  it('logs -f resumes after a dropped connection with Last-Event-ID: no event missed or repeated', async () => {
    const cutAfterEvents = 2;
    const steps = [
      '- say: one',
      '- sleep_ms: 800',
      '- say: two',
      '- sleep_ms: 800',
      '- say: three',
      '- sleep_ms: 800',
      '- say: four',
    ];
    const res = await h.postJson(
      `${h.url}/v1/chat/completions`,
      runbookRequest(runbook(steps), { stream: false, jetty: { timeout_hint: 0 } }),
    );
    const id = ((await res.json()) as any).jetty_metadata.trajectory_id as string;
    const proxy = await cuttingProxy(Number(new URL(h.url).port), cutAfterEvents);
    try {
      const c = await cli(['logs', id, '-f', '--json'], { server: proxy.url });
      expect(await c.done).toBe(0);
      const seen = c
        .stdout()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { id: string; type: string });
      const traj = await getJson(`${h.url}/v1/runs/${id}/trajectory`);
      expect(seen.map((e) => e.id)).toEqual(traj.events.map((e: { id: string }) => e.id));
      expect(seen.at(-1)!.type).toBe('run.completed');
      // The first connection was cut after two events; the second asked for what came after them.
      expect(proxy.cut()).toBe(true);
      const streams = proxy.requests.filter((r) => r.includes(`/v1/runs/${id}/events`));
      expect(streams).toHaveLength(2);
      expect(streams[0]).not.toMatch(/last-event-id/i);
      const resumedAfter = /^last-event-id: (\S+)\r?$/im.exec(streams[1]!)?.[1];
      expect(seen.findIndex((e) => e.id === resumedAfter)).toBeGreaterThanOrEqual(cutAfterEvents - 1);
      expect(c.stderr()).toMatch(/connection lost .*resuming after event/);
    } finally {
      await proxy.close();
    }
  });
});
