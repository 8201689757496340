// The "bare CLI" peer: the same pinned claude CLI the server's sandboxes run, started headless on
// this host with no server, no Docker and no gateway in between, answered by the project's own
// simulated provider on loopback with the same runbook's `simulate` script. Used by
// `npm run bench -- --vs-bare` (bench/run.ts), which interleaves its runs with the server's.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createSimulatedProvider } from '../src/providers/simulated/index.js';
import { CLAUDE_CODE_VERSION, userMessage } from '../src/runtimes/claude-code.js';
import { composePrompt } from '../src/worker/prompt.js';
import type { Machine } from './machine.js';
import { percentile } from './stats.js';

export interface BarePeer {
  /** One headless CLI run of the runbook; milliseconds from spawn to exit, or why it failed. */
  runOnce(timeoutSec: number): Promise<{ ok: true; ms: number } | { ok: false; reason: string }>;
  readonly cliVersion: string;
  close(): Promise<void>;
}

/** bench/peers/node_modules/.bin/claude, installed on first use with the project's exact pin. */
function ensureCli(root: string): string {
  const prefix = path.join(root, 'bench/peers');
  const bin = path.join(prefix, 'node_modules/.bin/claude');
  if (!existsSync(bin)) {
    process.stderr.write(`bench: installing claude-code@${CLAUDE_CODE_VERSION} under bench/peers\n`);
    const r = spawnSync('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund'], {
      stdio: 'inherit',
    });
    if (r.status !== 0 || !existsSync(bin)) throw new Error('npm install --prefix bench/peers failed');
  }
  return bin;
}

/** Node's http server in front of the provider's fetch-shaped handler. */
async function serve(handler: (r: Request) => Promise<Response>): Promise<Server> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
    const request = new Request(`http://127.0.0.1${req.url ?? '/'}`, {
      method: req.method ?? 'GET',
      headers,
      ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream, duplex: 'half' } : {}),
    });
    handler(request)
      .then(async (response) => {
        res.writeHead(response.status, Object.fromEntries(response.headers));
        if (response.body) for await (const part of response.body) res.write(part);
        res.end();
      })
      .catch((e: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String((e as Error).message));
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

export async function startBarePeer(root: string, runbookTemplate: string): Promise<BarePeer> {
  const bin = ensureCli(root);
  const base = await mkdtemp(path.join(os.tmpdir(), 'jetty-bench-bare-'));
  const resultsDir = path.join(base, 'results');
  // The hello runbook has one template variable; the server fills it with its own results dir.
  const runbook = runbookTemplate.replaceAll('{{results_dir}}', resultsDir);
  const sim = createSimulatedProvider({
    runbook,
    requiredOutputs: [path.join(resultsDir, 'hello.txt')],
    resultsDir,
    workdir: base,
  });
  const server = await serve((r) => sim.fetch(r));
  const port = (server.address() as AddressInfo).port;
  // The prompt the server's worker composes (RUN_TIMEOUT_SEC's default 1200 s), given the same way
  // (one stream-json user message).
  const prompt = userMessage(
    composePrompt({ runbook, instruction: 'Execute the runbook.', timeoutSec: 1200, resultsDir }),
  );
  let n = 0;
  return {
    cliVersion: CLAUDE_CODE_VERSION,
    async runOnce(timeoutSec) {
      const home = path.join(base, `home-${++n}`);
      await rm(resultsDir, { recursive: true, force: true });
      const t0 = performance.now();
      const child = spawn(
        bin,
        [
          '-p',
          '--input-format',
          'stream-json',
          '--output-format',
          'stream-json',
          '--verbose',
          '--dangerously-skip-permissions',
          '--no-session-persistence',
          '--model=claude-sonnet-4-6',
        ],
        {
          cwd: base,
          stdio: ['pipe', 'pipe', 'pipe'],
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            HOME: home,
            ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}`,
            ANTHROPIC_API_KEY: 'bench-not-a-key',
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
            DISABLE_TELEMETRY: '1',
            DISABLE_AUTOUPDATER: '1',
            DISABLE_ERROR_REPORTING: '1',
            CLAUDE_CODE_MAX_RETRIES: '1',
            // The CLI refuses --dangerously-skip-permissions as root unless told it is sandboxed;
            // the server's sandboxes run it as an unprivileged user instead.
            ...(process.getuid?.() === 0 ? { IS_SANDBOX: '1' } : {}),
          },
        },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      child.stdin.end(prompt);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutSec * 1000);
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      clearTimeout(timer);
      const ms = performance.now() - t0;
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return { ok: false, reason: `exit ${code}: ${(err || last).slice(0, 300)}` };
      if (!/"type":"result","subtype":"success"/.test(last))
        return { ok: false, reason: `no success result: ${last.slice(0, 300)}` };
      const text = await readFile(path.join(resultsDir, 'hello.txt'), 'utf8').catch(() => '(missing)');
      if (text.trim() !== 'hi') return { ok: false, reason: `hello.txt holds ${JSON.stringify(text)}` };
      return { ok: true, ms };
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(base, { recursive: true, force: true });
    },
  };
}

/** One interleaved pair's results: the server's request → `[DONE]` (and its `agent_ms`), the bare CLI's spawn → exit. */
export interface VsBareResult {
  date: Date;
  machine: Machine;
  loadAfter: [number, number, number];
  serverUrl: string;
  /** The server was started with WARM_POOL_SIZE=0 (the caller says so: `--cold-server`). */
  coldServer: boolean;
  cliVersion: string;
  server: number[];
  serverAgent: number[];
  bare: number[];
  failures: string[];
}

const fmt = (ms: number | undefined) => (ms === undefined ? '–' : `${Math.round(ms)}`);
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? '–' : `${(a / b).toFixed(2)}×`;
const sum = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0);
/** Sequential throughput: runs per minute of time spent on that peer's runs alone. */
const perMin = (xs: readonly number[]) => (xs.length === 0 ? undefined : (xs.length * 60_000) / sum(xs));

export function renderVsBare(r: VsBareResult): string {
  const m = r.machine;
  const row = (label: string, s: number | undefined, b: number | undefined) =>
    `| ${label} | ${fmt(s)} | ${fmt(b)} | ${ratio(s, b)} |`;
  const sPm = perMin(r.server);
  const bPm = perMin(r.bare);
  return [
    `# The server vs the bare claude CLI (hello runbook, simulated provider)${r.coldServer ? ', no warm pool' : ''}`,
    '',
    `${r.date.toISOString()}; ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB; ${m.os}; Docker ${m.docker}; ` +
      `Node ${m.node}. Load average (1/5/15 min) ${m.load.join(' / ')} before, ${r.loadAfter.join(' / ')} after: ` +
      'the machine was shared with other work, so read the figures as rough.',
    '',
    `- **server**: \`POST /v1/chat/completions\` to ${r.serverUrl}, request → \`data: [DONE]\`: the claude CLI ` +
      'in a Docker sandbox, the gateway, the worker, Redis, the event stream.',
    `- **bare CLI**: \`claude -p\` ${r.cliVersion} (the project's pin, installed under bench/peers) run headless ` +
      'on the host, spawn → exit, same prompt, same flags, answered directly by the simulated provider on loopback ' +
      'with the same `simulate` script.',
    `- Runs alternate (server, bare, bare, server, …), one at a time, after one uncounted warm-up of each. ` +
      `${r.bare.length} bare and ${r.server.length} server runs counted. Milliseconds, nearest-rank percentiles.`,
    r.coldServer
      ? '- The server was started with `WARM_POOL_SIZE=0`: every run creates a sandbox and starts the CLI in it, ' +
        'as the bare CLI starts on every run.'
      : '- The server keeps warm sandboxes (`WARM_POOL_SIZE`, default 2) whose CLI is already started and waiting ' +
        'for its prompt, so its `[DONE]` time holds no CLI start-up, which the bare CLI pays on every run. ' +
        'bench/RESULTS-vs-bare-cold.md is the same comparison with `WARM_POOL_SIZE=0`.',
    '- The bare CLI runs as root with `IS_SANDBOX=1` when the benchmark does (it refuses ' +
      '`--dangerously-skip-permissions` as root otherwise); no container, no gateway.',
    '',
    '| metric | server | bare CLI | server / bare |',
    '| --- | ---: | ---: | ---: |',
    row('request → `[DONE]` p50', percentile(r.server, 50), percentile(r.bare, 50)),
    row('request → `[DONE]` p90', percentile(r.server, 90), percentile(r.bare, 90)),
    row(
      'server `agent_ms` p50 (the CLI inside the sandbox) vs bare',
      percentile(r.serverAgent, 50),
      percentile(r.bare, 50),
    ),
    `| runs/min, sequential | ${sPm?.toFixed(1) ?? '–'} | ${bPm?.toFixed(1) ?? '–'} | ${ratio(sPm, bPm)} |`,
    '',
    r.failures.length === 0
      ? 'Every run completed and wrote `hello.txt` = `hi`.'
      : `Failed runs (left out of the figures):\n\n${r.failures.map((f) => `- ${f}`).join('\n')}`,
    '',
  ].join('\n');
}
