// Sandbox start time per environment and runtime, against a running server:
//   npm run build && node dist/bench/environments.js
// For each snapshot and runtime, BENCH_RUNS (default 5) hello runs one at a time, after one
// warm-up run (which pays the first probe of the image); prints a markdown table of the p50 of
// `timings.sandbox_start_ms` (environment check, create, start, place files, start the agent).
// Env: BENCH_URL (http://127.0.0.1:8080), BENCH_API_KEY (required), BENCH_RUNS,
// BENCH_SNAPSHOTS and BENCH_AGENTS (comma lists; default all).
import { z } from 'zod';
import { summarize } from './stats.js';

const env = z
  .object({
    BENCH_URL: z.string().default('http://127.0.0.1:8080'),
    BENCH_API_KEY: z.string({ error: 'BENCH_API_KEY must be a collection API key' }).min(1),
    BENCH_RUNS: z.coerce.number().int().min(1).default(5),
    BENCH_SNAPSHOTS: z.string().default('lean,python312-uv,python312-uv-office,prism-playwright'),
    BENCH_AGENTS: z.string().default('claude-code,codex,gemini-cli,hermes,opencode'),
  })
  .parse(process.env);

const RUNBOOK =
  '# Hello\n\n```simulate\n- run: mkdir -p /app/results && echo hi > /app/results/hello.txt\n- say: done\n```\n';
const headers = { 'content-type': 'application/json', authorization: `Bearer ${env.BENCH_API_KEY}` };

async function startMs(snapshot: string, agent: string): Promise<number> {
  const res = await fetch(`${env.BENCH_URL}/v1/chat/completions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      model: 'default',
      stream: false,
      messages: [{ role: 'system', content: RUNBOOK }],
      jetty: { runbook: true, model_provider: 'simulated', agent, snapshot, timeout_hint: 300 },
    }),
  });
  const body = (await res.json()) as { jetty_metadata?: { trajectory_id?: string; status?: string } };
  const id = body.jetty_metadata?.trajectory_id;
  if (!id || body.jetty_metadata?.status !== 'completed')
    throw new Error(`${snapshot}/${agent}: ${JSON.stringify(body).slice(0, 300)}`);
  const run = (await (await fetch(`${env.BENCH_URL}/v1/runs/${id}`, { headers })).json()) as {
    timings: { sandbox_start_ms: number };
  };
  return run.timings.sandbox_start_ms;
}

const agents = env.BENCH_AGENTS.split(',');
const rows: string[] = [
  `| environment | ${agents.join(' | ')} |`,
  `|---|${agents.map(() => '--:').join('|')}|`,
];
for (const snapshot of env.BENCH_SNAPSHOTS.split(',')) {
  const cells: string[] = [];
  for (const agent of agents) {
    await startMs(snapshot, agent);
    const samples: number[] = [];
    for (let i = 0; i < env.BENCH_RUNS; i++) samples.push(await startMs(snapshot, agent));
    cells.push(String(summarize(samples)?.p50 ?? '–'));
    process.stderr.write(`${snapshot} ${agent}: ${samples.join(' ')}\n`);
  }
  rows.push(`| ${snapshot} | ${cells.join(' | ')} |`);
}
process.stdout.write(`${rows.join('\n')}\n`);
