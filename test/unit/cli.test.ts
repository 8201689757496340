import { EventEmitter } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { downloadArtifacts } from '../../src/cli/artifacts.js';
import type { JettyClient, RunEvent } from '../../src/cli/client.js';
import type { CliContext } from '../../src/cli/command.js';
import { requestBody } from '../../src/cli/commands/run.js';
import { InterruptHandler, type InterruptOutcome } from '../../src/cli/interrupt.js';
import { runCli } from '../../src/cli/main.js';
import { ProgressView } from '../../src/cli/progress.js';
import { evaluationSummary, toolCallLine } from '../../src/events/display.js';
import { SseParser, SseTooLargeError } from '../../src/events/sse-parser.js';

function sink(isTTY = false) {
  let text = '';
  return { write: (s: string) => (text += s), isTTY, columns: 80, text: () => text };
}

function ctx(env: Record<string, string> = {}, stdin: CliContext['stdin'] = new PassThrough()) {
  const stdout = sink();
  const stderr = sink();
  const c: CliContext = {
    env,
    stdout,
    stderr,
    stdin,
    cwd: process.cwd(),
    signals: new EventEmitter() as never,
  };
  return { c, stdout, stderr };
}

const ev = (type: string, data: Record<string, unknown>, ts = 1000): RunEvent => ({
  id: `${ts}-0`,
  type,
  ts,
  data,
});

describe('SSE parser', () => {
  it('splits messages on LF, CRLF and CR, also when a CRLF is cut between chunks', () => {
    const p = new SseParser();
    const got = [
      ...p.push('event: a\r'),
      ...p.push('\nid: 1-0\r\ndata: x\r'),
      ...p.push('\n\r\n: a comment\ndata: y\rdata: z\r\r'),
    ];
    expect(got).toEqual([
      { event: 'a', id: '1-0', data: 'x' },
      { event: 'message', id: '1-0', data: 'y\nz' },
    ]);
  });

  it('resumes only after whole messages: an id whose message was cut off is not the last id', () => {
    const p = new SseParser();
    p.push('id: 1-0\ndata: {}\n\nid: 2-0\ndata: {"cut');
    expect(p.lastEventId).toBe('1-0');
  });

  it('refuses a message past its bound instead of growing without end', () => {
    const p = new SseParser(100);
    expect(() => p.push(`data: ${'x'.repeat(200)}`)).toThrow(SseTooLargeError);
    expect(() => new SseParser(100).push(`data: ${'x'.repeat(60)}\ndata: ${'x'.repeat(60)}\n`)).toThrow(
      /larger than 100/,
    );
  });
});

describe('what a person sees', () => {
  it('one short line per tool call', () => {
    expect(toolCallLine('Bash', { command: 'ls  -la\n /app', description: 'list' })).toBe(
      'Bash: ls -la /app',
    );
    expect(toolCallLine('shell', { command: ['bash', '-lc', 'echo hi'] })).toBe('shell: bash -lc echo hi');
    expect(toolCallLine('Write', { file_path: '/app/results/a.txt', content: 'x'.repeat(500) })).toBe(
      'Write: /app/results/a.txt',
    );
    expect(toolCallLine('Bash', { command: 'y'.repeat(300) }, 20)).toBe(`Bash: ${'y'.repeat(19)}…`);
  });

  it('an evaluation as one line, whatever its shape', () => {
    expect(evaluationSummary({ passed: true, score: 0.9, summary: 'all files there' })).toBe(
      'passed · score 0.9 · all files there',
    );
    expect(evaluationSummary({ verdict: 'fail', reason: 'no report' })).toBe('fail · no report');
    expect(evaluationSummary({ checks: 3 })).toBe('{"checks":3}');
    expect(evaluationSummary(undefined)).toBe('');
  });

  it('plain output: whole lines, streamed text joined, no control characters', () => {
    const out = sink(false);
    const v = new ProgressView(out);
    v.event(ev('run.queued', { agent: 'claude-code', model: 'm', provider: 'simulated' }, 0));
    v.event(ev('agent.message', { text: 'Hel', delta: true }, 100));
    v.event(ev('agent.message', { text: 'lo\nwor', delta: true }, 200));
    v.event(ev('tool.call', { call_id: 'c', name: 'Bash', input: { command: 'echo hi' } }, 300));
    v.event(ev('tool.result', { call_id: 'c', output: 'boom\nmore', is_error: true }, 400));
    v.event(ev('usage', { input_tokens: 100, output_tokens: 20, cost_usd: 0.01, source: 'agent' }, 7000));
    v.event(
      ev(
        'run.completed',
        { duration_ms: 7300, usage: { input_tokens: 100, output_tokens: 20, cost_usd: 0.01 } },
        7300,
      ),
    );
    v.close();
    expect(out.text().split('\n')).toEqual([
      'queued: claude-code · m · simulated',
      'Hello',
      'wor',
      '→ Bash: echo hi',
      '  ✗ boom more',
      '· 0:07 pending · 120 tokens · $0.010',
      '✓ completed in 7.3s · 120 tokens · $0.010',
      '',
    ]);
  });

  it('on a terminal the status line is redrawn in place under the lines', () => {
    const out = sink(true);
    const v = new ProgressView(out, { color: false });
    v.event(ev('run.started', { sandbox_id: 'abc', runtime_version: '1.0' }, Date.now()));
    v.event(ev('tool.call', { call_id: 'c', name: 'Bash', input: { command: 'ls' } }, Date.now()));
    v.close();
    const t = out.text();
    // Each line is printed after erasing the status line, which is drawn again after it.
    const erase = '\r\u001b[2K';
    expect(t.startsWith('started: sandbox abc · 1.0\n· 0:00 running · 0 tokens · —')).toBe(true);
    expect(t).toContain(`${erase}→ Bash: ls\n· 0:00 running`);
    expect(t.endsWith(erase)).toBe(true);
  });
});

describe('the prompt on a terminal', () => {
  it('holds the lines back while Ctrl-C asks, and prints them after', () => {
    const out = sink(true);
    const v = new ProgressView(out, { color: false });
    v.event(ev('run.started', { sandbox_id: 'abc', runtime_version: '1.0' }, Date.now()));
    v.pause(true);
    const before = out.text();
    v.event(ev('tool.call', { call_id: 'c', name: 'Bash', input: { command: 'ls' } }, Date.now()));
    v.tick();
    expect(out.text()).toBe(before);
    v.pause(false);
    expect(out.text().slice(before.length)).toMatch(/^→ Bash: ls\n· 0:00 running/);
  });
});

describe('jetty run request', () => {
  it('carries the flags in the jetty block and answers at once (timeout_hint 0)', () => {
    const body = requestBody(
      '# rb',
      {
        agent: 'codex',
        model: 'gpt-5',
        provider: 'openai',
        var: ['a=1', 'b=x=y'],
        snapshot: 'python312-uv',
        timeout: '90',
      },
      ['c/_uploads/1/f.csv'],
    );
    expect(body).toMatchObject({
      model: 'gpt-5',
      stream: false,
      messages: [{ role: 'system', content: '# rb' }, { role: 'user' }],
      jetty: {
        runbook: true,
        timeout_hint: 0,
        agent: 'codex',
        model_provider: 'openai',
        snapshot: 'python312-uv',
        timeout_sec: 90,
        template_variables: { a: '1', b: 'x=y' },
        file_paths: ['c/_uploads/1/f.csv'],
      },
    });
  });
});

describe('jetty exit codes', () => {
  it('--help lists the commands and exits 0', async () => {
    const { c, stdout } = ctx();
    expect(await runCli(['--help'], c)).toBe(0);
    for (const name of ['run', 'runs', 'logs', 'cancel', 'admin'])
      expect(stdout.text()).toMatch(new RegExp(`^  ${name} `, 'm'));
    expect(await runCli(['logs', '--help'], c)).toBe(0);
    expect(stdout.text()).toContain('usage: jetty logs RUN_ID [-f]');
  });

  it('usage errors exit 2 and say what was wrong', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [['run'], /one runbook file/],
      [['run', 'x.md', '--nope'], /Unknown option '--nope'/],
      [['runs', '--status', 'done'], /--status must be one of pending, running/],
      [['runs', '--limit', '500'], /--limit must be a whole number from 1 to 100/],
      [['cancel'], /one run id/],
      [['run', 'no-such-file.md'], /cannot read the runbook .*no-such-file\.md/],
      [['run', path.join(import.meta.dirname, 'cli.test.ts'), '--var', 'novalue'], /--var takes NAME=VALUE/],
      [['runs', '--server', 'ftp://x'], /--server must be an http or https URL/],
    ];
    for (const [argv, msg] of cases) {
      const { c, stderr } = ctx({ JETTY_API_KEY: 'k', JETTY_URL: 'http://127.0.0.1:9' });
      expect(await runCli(argv, c), argv.join(' ')).toBe(2);
      expect(stderr.text()).toMatch(msg);
    }
  });

  it('no key: exit 2 naming JETTY_API_KEY; a bad setting names its variable', async () => {
    const a = ctx({});
    expect(await runCli(['runs'], a.c)).toBe(2);
    expect(a.stderr.text()).toContain('JETTY_API_KEY');
    const b = ctx({ JETTY_API_KEY: 'k', JETTY_CLI_RECONNECTS: 'lots' });
    expect(await runCli(['runs'], b.c)).toBe(2);
    expect(b.stderr.text()).toContain('JETTY_CLI_RECONNECTS: must be a whole number');
  });

  it('a server that does not answer: exit 5 naming the URL and how to change it', async () => {
    const port = await closedPort();
    const { c, stderr } = ctx({ JETTY_API_KEY: 'k', JETTY_URL: `http://127.0.0.1:${port}` });
    expect(await runCli(['runs'], c)).toBe(5);
    expect(stderr.text()).toContain(
      `cannot reach the server at http://127.0.0.1:${port} (connect ECONNREFUSED`,
    );
    expect(stderr.text()).toContain('JETTY_URL');
  });

  it('admin master-key still works without a server (the old npm run jetty form too)', async () => {
    for (const argv of [['admin', 'master-key'], ['master-key']]) {
      const { c, stdout } = ctx();
      expect(await runCli(argv, c)).toBe(0);
      expect(Buffer.from(stdout.text().trim(), 'base64')).toHaveLength(32);
    }
  });
});

describe('Ctrl-C', () => {
  async function interrupt(stdinIsTTY: boolean, answer?: string): Promise<InterruptOutcome[]> {
    const stdin = Object.assign(new PassThrough(), { isTTY: stdinIsTTY });
    const { c, stderr } = ctx({}, stdin);
    const seen: InterruptOutcome[] = [];
    const h = new InterruptHandler(c, 'run1', (o) => seen.push(o));
    h.install();
    (c.signals as unknown as EventEmitter).emit('SIGINT');
    if (answer !== undefined) {
      await new Promise((r) => setTimeout(r, 20));
      expect(stderr.text()).toContain('cancel the run run1? [y/N]');
      stdin.write(answer);
    }
    await new Promise((r) => setTimeout(r, 20));
    (c.signals as unknown as EventEmitter).emit('SIGINT');
    await new Promise((r) => setTimeout(r, 20));
    h.remove();
    return seen;
  }

  it('without a terminal: cancels at once; a second Ctrl-C stops waiting', async () => {
    expect(await interrupt(false)).toEqual(['cancel', 'detach']);
  });

  it('at a terminal: asks first; "n" (or Enter) goes on, "y" cancels', async () => {
    expect((await interrupt(true, 'n\n'))[0]).toBe('continue');
    expect((await interrupt(true, 'y\n'))[0]).toBe('cancel');
  });
});

describe('artifact downloads', () => {
  it('refuse a path out of the results directory, and stop at the byte bound', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'jetty-dl-'));
    const client = {
      download: () => {
        throw new Error('must not be fetched');
      },
    } as unknown as JettyClient;
    try {
      const got = await downloadArtifacts(
        client,
        {
          id: 'r',
          artifacts: [
            { path: '../escape.txt', size: 1, sha256: 'x', content_type: 'text/plain' },
            { path: 'big.bin', size: 2000, sha256: 'x', content_type: 'application/octet-stream' },
          ],
        },
        dir,
        1000,
      );
      expect(got.saved).toEqual([]);
      expect(got.skipped.map((s) => s.reason)).toEqual([
        'its path leads outside the results directory',
        expect.stringContaining('over JETTY_CLI_MAX_DOWNLOAD_BYTES (1000 bytes per run)'),
      ]);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}
