// Latency benchmark of one runbook run, end to end, against a running server:
//   npm run build && npm run bench
// Env: BENCH_URL (http://127.0.0.1:8080), BENCH_RUNS (20 per phase), BENCH_CONCURRENCY (4),
// BENCH_TIMEOUT_SEC (300 per run), BENCH_API_KEY (a collection's key; default: the demo key that
// scripts/up.sh keeps in data/demo-api-key), BENCH_AGENT (a runtime to run the runbook on; its report goes to
// bench/RESULTS-<agent>.md). Progress goes to stderr; the markdown report to stdout and to
// bench/RESULTS.md. `--vs-bare`: BENCH_RUNS server runs interleaved with as many runs of the bare claude
// CLI on this host (bench/bare.ts) and of claude-max-api-proxy (bench/proxy-peer.ts), each figure with its
// ratio to the bare CLI, report to bench/RESULTS-vs-bare.md (with `--cold-server`, for a server
// started with WARM_POOL_SIZE=0: bench/RESULTS-vs-bare-cold.md). Exits 1 when the server is not up or any run failed (after reporting it).
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { type BarePeer, type PeerRun, startBarePeer } from './bare.js';
import { startCpuSampler } from './cpu.js';
import { benchFollowers } from './followers.js';
import { describeMachine, loadAverage } from './machine.js';
import {
  type ConcurrentTotals,
  PEERS,
  type PeerName,
  renderVsPeers,
  roundOrder,
  type VsPeersResult,
} from './peers-report.js';
import { type ProxyPeer, startProxyPeer } from './proxy-peer.js';
import { type Phase, renderReport, type Sample, type ServerInfo } from './report.js';
import { readSse } from './sse.js';

const envSchema = z.object({
  BENCH_URL: z
    .url({ error: 'BENCH_URL must be the server’s base URL, e.g. http://127.0.0.1:8080' })
    .default('http://127.0.0.1:8080')
    .transform((u) => u.replace(/\/+$/, '')),
  BENCH_RUNS: z.coerce
    .number()
    .int()
    .min(1, { error: 'BENCH_RUNS must be a whole number of runs per phase, at least 1 (default 20)' })
    .default(20),
  BENCH_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(1, { error: 'BENCH_CONCURRENCY must be a whole number of runs at once, at least 1 (default 4)' })
    .default(4),
  BENCH_TIMEOUT_SEC: z.coerce
    .number()
    .int()
    .min(1, { error: 'BENCH_TIMEOUT_SEC must be a whole number of seconds per run (default 300)' })
    .default(300),
  /** Run on this runtime (jetty.agent) instead of the runbook's own; the report goes to RESULTS-<agent>.md. */
  BENCH_AGENT: z
    .enum(['claude-code', 'codex', 'gemini-cli', 'opencode', 'hermes'], {
      error: 'BENCH_AGENT must be one of claude-code, codex, gemini-cli, opencode, hermes',
    })
    .optional(),
});
type BenchConfig = z.infer<typeof envSchema>;

/** The agent-side events: the first of them is when the agent has visibly started working. */
const AGENT_EVENTS = new Set(['agent.message', 'agent.reasoning', 'tool.call', 'tool.result', 'usage']);

// Only the fields the benchmark reads; the server sends more.
const chunkSchema = z.looseObject({
  choices: z.array(z.looseObject({ finish_reason: z.string().nullable() })).optional(),
  jetty_metadata: z.looseObject({ trajectory_id: z.string(), status: z.string() }).optional(),
  jetty_event: z.looseObject({ type: z.string() }).optional(),
  error: z.looseObject({ code: z.string(), message: z.string() }).optional(),
});

const runRecordSchema = z.looseObject({
  id: z.string(),
  status: z.string(),
  model: z.string(),
  image: z.string().nullable(),
  runtime_version: z.string().nullable(),
  artifacts: z.array(z.looseObject({ path: z.string() })),
  error: z.looseObject({ code: z.string(), message: z.string() }).nullable(),
  timings: z
    .object({
      queue_ms: z.number(),
      sandbox_start_ms: z.number().nullable(),
      agent_ms: z.number().nullable(),
      collect_ms: z.number().nullable(),
    })
    .nullable(),
});
type RunRecord = z.infer<typeof runRecordSchema>;

type Outcome = { ok: true; sample: Sample; record: RunRecord } | { ok: false; runId: string; reason: string };

class RunFailed extends Error {}

function fail(reason: string): never {
  throw new RunFailed(reason);
}

function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (no package.json above the script)');
    dir = up;
  }
  return dir;
}

async function checkReady(base: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5000) });
  } catch (e) {
    console.error(
      `The server at ${base} does not answer /readyz (${(e as Error).message}). Run \`bash scripts/up.sh\` first (or set BENCH_URL).`,
    );
    process.exit(1);
  }
  if (!res.ok) {
    console.error(
      `The server at ${base} is not ready: /readyz answered ${res.status} ${await res.text()}. Run \`bash scripts/up.sh\` first, or see data/logs/.`,
    );
    process.exit(1);
  }
}

/** The collection key every request carries (set once in main). */
let auth: Record<string, string> = {};

async function getJson(url: string, signal: AbortSignal): Promise<unknown> {
  const res = await fetch(url, { signal, headers: auth });
  if (!res.ok) fail(`GET ${url} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  return res.json();
}

/** One run, streamed; every mark is milliseconds from just before the request was sent. */
async function runOnce(cfg: BenchConfig, runbook: string): Promise<Outcome> {
  const signal = AbortSignal.timeout(cfg.BENCH_TIMEOUT_SEC * 1000);
  let runId = '';
  try {
    const t0 = performance.now();
    const res = await fetch(`${cfg.BENCH_URL}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({
        stream: true,
        messages: [
          { role: 'system', content: runbook },
          { role: 'user', content: 'Execute the runbook.' },
        ],
        jetty: {
          runbook: true,
          model_provider: 'simulated',
          ...(cfg.BENCH_AGENT ? { agent: cfg.BENCH_AGENT } : {}),
        },
      }),
      signal,
    });
    if (!res.ok || !res.body) fail(`POST answered ${res.status}: ${(await res.text()).slice(0, 300)}`);

    let firstChunk: number | undefined;
    let runStarted: number | undefined;
    let firstAgentEvent: number | undefined;
    let done: number | undefined;
    let streamStatus: string | undefined;
    let streamError: string | undefined;
    for await (const msg of readSse(res.body)) {
      const t = performance.now() - t0;
      if (msg.data === '[DONE]') {
        done ??= t;
        continue;
      }
      const chunk = chunkSchema.parse(JSON.parse(msg.data));
      if (firstChunk === undefined) {
        firstChunk = t;
        runId =
          chunk.jetty_metadata?.trajectory_id ?? fail('the first chunk has no jetty_metadata.trajectory_id');
      }
      const type = chunk.jetty_event?.type;
      if (type === 'run.started') runStarted ??= t;
      if (type && AGENT_EVENTS.has(type)) firstAgentEvent ??= t;
      if (chunk.choices?.[0]?.finish_reason) streamStatus = chunk.jetty_metadata?.status;
      if (chunk.error) streamError = `${chunk.error.code}: ${chunk.error.message}`;
    }
    if (streamError) fail(`the stream carried an error: ${streamError}`);
    if (done === undefined) fail('the stream ended without [DONE]');
    if (streamStatus !== 'completed') fail(`the last chunk says the run is ${streamStatus ?? 'unknown'}`);
    if (firstChunk === undefined || runStarted === undefined || firstAgentEvent === undefined)
      fail('the stream lacks run.started or any agent event');

    const record = runRecordSchema.parse(await getJson(`${cfg.BENCH_URL}/v1/runs/${runId}`, signal));
    if (record.status !== 'completed')
      fail(`the run record says ${record.status}${record.error ? ` (${record.error.code})` : ''}`);
    const timings = record.timings;
    if (timings?.agent_ms == null || timings.sandbox_start_ms == null || timings.collect_ms == null)
      fail('the run record has no timings.agent_ms (is the server older than the timings change?)');
    if (!record.artifacts.some((a) => a.path === 'hello.txt')) fail('the run produced no hello.txt');
    const art = await fetch(`${cfg.BENCH_URL}/v1/runs/${runId}/artifacts/hello.txt`, {
      signal,
      headers: auth,
    });
    const text = art.ok ? await art.text() : `(HTTP ${art.status})`;
    if (text.trim() !== 'hi') fail(`hello.txt holds ${JSON.stringify(text.slice(0, 40))}, not "hi"`);

    return {
      ok: true,
      record,
      sample: {
        firstChunk,
        runStarted,
        firstAgentEvent,
        done,
        overhead: done - timings.agent_ms,
        queue: timings.queue_ms,
        sandboxStart: timings.sandbox_start_ms,
        agent: timings.agent_ms,
        collect: timings.collect_ms,
        rest: done - timings.queue_ms - timings.sandbox_start_ms - timings.agent_ms - timings.collect_ms,
      },
    };
  } catch (e) {
    const reason =
      e instanceof RunFailed
        ? e.message
        : e instanceof Error && e.name === 'TimeoutError'
          ? `no end within BENCH_TIMEOUT_SEC=${cfg.BENCH_TIMEOUT_SEC}`
          : `client error: ${(e as Error).message}`;
    return { ok: false, runId: runId || '(none)', reason };
  }
}

/** Runs `runs` runs, `concurrency` at a time, each slot starting its next run when one ends. */
async function runPhase(
  name: string,
  cfg: BenchConfig,
  runbook: string,
  runs: number,
  concurrency: number,
  onRecord: (r: RunRecord) => void,
): Promise<Phase> {
  const phase: Phase = { name, runs, concurrency, wallMs: 0, samples: [], failures: [] };
  let next = 0;
  let finished = 0;
  const t0 = performance.now();
  const slot = async () => {
    while (next < runs) {
      const index = next++;
      const out = await runOnce(cfg, runbook);
      finished++;
      if (out.ok) {
        phase.samples.push(out.sample);
        onRecord(out.record);
        progress(`${name} ${finished}/${runs}: ok in ${(out.sample.done / 1000).toFixed(2)} s`);
      } else {
        phase.failures.push({ index: index + 1, runId: out.runId, reason: out.reason });
        progress(`${name} ${finished}/${runs}: FAILED (${out.runId}): ${out.reason}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, runs) }, slot));
  phase.wallMs = performance.now() - t0;
  return phase;
}

/** `--name N` from the command line, a positive whole number. */
function flag(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`${name} needs a positive whole number, e.g. ${name} 1000`);
    process.exit(2);
  }
  return n;
}

function progress(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

/**
 * The server, the bare CLI and the proxy, one run at a time, the order rotating each round so that
 * none always follows another; one uncounted warm-up of each first.
 */
async function vsPeers(cfg: BenchConfig, root: string, runbook: string): Promise<boolean> {
  const bare = await startBarePeer(root, runbook);
  let proxy: ProxyPeer;
  try {
    proxy = await startProxyPeer(root, runbook);
  } catch (e) {
    await bare.close();
    throw e;
  }
  try {
    const run: Record<PeerName, () => Promise<PeerRun & { agentMs?: number; firstAgentMs?: number }>> = {
      server: async () => {
        const out = await runOnce(cfg, runbook);
        return out.ok
          ? {
              ok: true,
              firstMs: out.sample.firstChunk,
              ms: out.sample.done,
              agentMs: out.sample.agent,
              firstAgentMs: out.sample.firstAgentEvent,
            }
          : { ok: false, reason: `${out.runId}: ${out.reason}` };
      },
      bare: () => bare.runOnce(cfg.BENCH_TIMEOUT_SEC),
      proxy: () => proxy.runOnce(cfg.BENCH_TIMEOUT_SEC),
    };
    for (const name of PEERS) {
      const warm = await run[name]();
      if (!warm.ok) {
        console.error(`The ${name} warm-up run failed: ${warm.reason}. Nothing measured.`);
        return false;
      }
    }
    const machine = await describeMachine();
    const r: VsPeersResult = {
      date: new Date(),
      machine,
      loadAfter: machine.load,
      serverUrl: cfg.BENCH_URL,
      coldServer: process.argv.includes('--cold-server'),
      cliVersion: bare.cliVersion,
      proxyVersion: proxy.version,
      times: {
        server: { first: [], done: [] },
        bare: { first: [], done: [] },
        proxy: { first: [], done: [] },
      },
      serverAgent: [],
      serverFirstAgent: [],
      failures: [],
    };
    for (let i = 1; i <= cfg.BENCH_RUNS; i++) {
      for (const name of roundOrder(PEERS, i)) {
        const out = await run[name]();
        if (out.ok) {
          r.times[name].first.push(out.firstMs);
          r.times[name].done.push(out.ms);
          if (out.agentMs !== undefined) r.serverAgent.push(out.agentMs);
          if (out.firstAgentMs !== undefined) r.serverFirstAgent.push(out.firstAgentMs);
          progress(`${name} ${i}: ok in ${(out.ms / 1000).toFixed(2)} s`);
        } else {
          r.failures.push(`${name} run ${i}: ${out.reason}`);
          progress(`${name} ${i}: FAILED: ${out.reason}`);
        }
      }
    }
    if (cfg.BENCH_CONCURRENCY > 1)
      r.concurrent = await concurrentPeers(cfg, root, runbook, run, bare, proxy, r);
    r.loadAfter = loadAverage();
    const markdown = renderVsPeers(r);
    process.stdout.write(markdown);
    const file = path.join(root, r.coldServer ? 'bench/RESULTS-vs-bare-cold.md' : 'bench/RESULTS-vs-bare.md');
    await writeFile(file, markdown);
    progress(`wrote ${path.relative(process.cwd(), file) || file}`);
    return r.failures.length === 0;
  } finally {
    await proxy.close();
    await bare.close();
  }
}

/** Blocks of each peer with BENCH_CONCURRENCY in flight, rotated; the host peers get one instance per slot. */
async function concurrentPeers(
  cfg: BenchConfig,
  root: string,
  runbook: string,
  run: Record<PeerName, () => Promise<PeerRun>>,
  bare: BarePeer,
  proxy: ProxyPeer,
  r: VsPeersResult,
): Promise<NonNullable<VsPeersResult['concurrent']>> {
  const c = cfg.BENCH_CONCURRENCY;
  const extraBare: BarePeer[] = [];
  const extraProxy: ProxyPeer[] = [];
  try {
    for (let i = 1; i < c; i++) {
      extraBare.push(await startBarePeer(root, runbook));
      extraProxy.push(await startProxyPeer(root, runbook));
    }
    const slots: Record<PeerName, Array<() => Promise<PeerRun>>> = {
      server: Array.from({ length: c }, () => run.server),
      bare: [bare, ...extraBare].map((p) => () => p.runOnce(cfg.BENCH_TIMEOUT_SEC)),
      proxy: [proxy, ...extraProxy].map((p) => () => p.runOnce(cfg.BENCH_TIMEOUT_SEC)),
    };
    const blocks = 2;
    const empty = (): ConcurrentTotals => ({ completed: 0, wallMs: 0, machineCpuMs: 0, groups: {} });
    const peers: Record<PeerName, ConcurrentTotals> = { server: empty(), bare: empty(), proxy: empty() };
    for (let b = 1; b <= blocks; b++) {
      for (const name of roundOrder(PEERS, b)) {
        let left = cfg.BENCH_RUNS;
        const cpu = startCpuSampler();
        const t0 = performance.now();
        await Promise.all(
          slots[name].map(async (once) => {
            while (left > 0) {
              left--;
              const out = await once();
              if (out.ok) peers[name].completed++;
              else r.failures.push(`${name}, ${c} in flight, block ${b}: ${out.reason}`);
            }
          }),
        );
        const wall = performance.now() - t0;
        const used = cpu.stop();
        const t = peers[name];
        t.wallMs += wall;
        t.machineCpuMs += used.machineMs;
        for (const [g, ms] of Object.entries(used.groups)) t.groups[g] = (t.groups[g] ?? 0) + ms;
        progress(
          `${name}, ${c} in flight, block ${b}: ${cfg.BENCH_RUNS} runs in ${(wall / 1000).toFixed(1)} s`,
        );
      }
    }
    return { inFlight: c, blocks, peers };
  } finally {
    for (const p of [...extraBare, ...extraProxy]) await p.close();
  }
}

async function main(): Promise<void> {
  const env = envSchema.safeParse(process.env);
  if (!env.success) {
    for (const issue of env.error.issues) console.error(`${issue.path.join('.')}: ${issue.message}`);
    process.exit(2);
  }
  const cfg = env.data;
  const root = repoRoot();
  const keyFile = path.join(root, 'data/demo-api-key');
  const key =
    process.env.BENCH_API_KEY || (existsSync(keyFile) ? (await readFile(keyFile, 'utf8')).trim() : '');
  if (!key) {
    console.error(
      'BENCH_API_KEY: set it to an API key of a collection on the server (or run scripts/up.sh first).',
    );
    process.exit(2);
  }
  auth = { authorization: `Bearer ${key}` };
  await checkReady(cfg.BENCH_URL);
  const followers = flag('--followers');
  if (followers !== undefined) {
    const runs = flag('--runs') ?? Math.max(1, Math.ceil(followers / 100));
    const pidFile = path.join(root, 'data/run/api.pid');
    const pid =
      process.env.BENCH_API_PID || (existsSync(pidFile) ? (await readFile(pidFile, 'utf8')).trim() : '');
    const ramp = flag('--ramp-ms');
    const out = await benchFollowers({
      url: cfg.BENCH_URL,
      auth,
      followers,
      runs,
      redisUrl: process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379',
      apiPid: pid ? Number(pid) : null,
      rampMs: ramp ?? 0,
      metricsToken: process.env.BENCH_METRICS_TOKEN || undefined,
    });
    process.stdout.write(out.markdown);
    const file = path.join(root, `bench/RESULTS-followers-${followers}${ramp ? `-ramp-${ramp}` : ''}.md`);
    await writeFile(file, out.markdown);
    progress(`wrote ${path.relative(process.cwd(), file) || file}`);
    if (!out.ok) process.exit(1);
    return;
  }
  const runbook = await readFile(path.join(root, 'examples/hello.md'), 'utf8');
  await checkReady(cfg.BENCH_URL);
  if (process.argv.includes('--vs-bare')) {
    if (!(await vsPeers(cfg, root, runbook))) process.exit(1);
    return;
  }

  const server: ServerInfo = { url: cfg.BENCH_URL, model: '?', image: '?', runtimeVersion: '?' };
  const note = (r: RunRecord) => {
    server.model = r.model;
    server.image = r.image ?? '?';
    server.runtimeVersion = r.runtime_version ?? '?';
  };

  progress(`warm-up run against ${cfg.BENCH_URL} (not counted)`);
  const warm = await runOnce(cfg, runbook);
  if (!warm.ok) {
    console.error(`The warm-up run failed (${warm.runId}): ${warm.reason}. Nothing measured.`);
    process.exit(1);
  }
  note(warm.record);

  const phases = [
    await runPhase('sequential', cfg, runbook, cfg.BENCH_RUNS, 1, note),
    await runPhase('concurrent', cfg, runbook, cfg.BENCH_RUNS, cfg.BENCH_CONCURRENCY, note),
  ];

  const markdown = renderReport({ date: new Date(), machine: await describeMachine(), server, phases });
  process.stdout.write(markdown);
  const out = path.join(root, cfg.BENCH_AGENT ? `bench/RESULTS-${cfg.BENCH_AGENT}.md` : 'bench/RESULTS.md');
  await writeFile(out, markdown);
  progress(`wrote ${path.relative(process.cwd(), out) || out}`);

  const failed = phases.reduce((n, p) => n + p.failures.length, 0);
  if (failed > 0) {
    console.error(`${failed} run(s) failed; see the report.`);
    process.exit(1);
  }
}

await main();
