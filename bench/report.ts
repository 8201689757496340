import type { Machine } from './machine.js';
import { summarize } from './stats.js';

/** One completed run. Marks are ms from sending the request; stages are the run record's timings. */
export interface Sample {
  firstChunk: number;
  runStarted: number;
  firstAgentEvent: number;
  done: number;
  /** done − agent_ms: everything the server adds around the agent CLI. */
  overhead: number;
  queue: number;
  sandboxStart: number;
  agent: number;
  collect: number;
  /** done − (queue + sandboxStart + agent + collect): what no stage accounts for. */
  rest: number;
}

export interface Failure {
  /** 1-based position in its phase. */
  index: number;
  runId: string;
  reason: string;
}

export interface Phase {
  name: string;
  runs: number;
  concurrency: number;
  wallMs: number;
  samples: Sample[];
  failures: Failure[];
}

export interface ServerInfo {
  url: string;
  model: string;
  image: string;
  runtimeVersion: string;
}

const ROWS: ReadonlyArray<[label: string, pick: (s: Sample) => number]> = [
  ['request → first chunk', (s) => s.firstChunk],
  ['request → `run.started`', (s) => s.runStarted],
  ['request → first agent event', (s) => s.firstAgentEvent],
  ['request → `[DONE]` (total)', (s) => s.done],
  ['**server overhead** (total − `agent_ms`)', (s) => s.overhead],
  ['stage: `queue_ms` (request → a worker takes it)', (s) => s.queue],
  ['stage: `sandbox_start_ms` (create + start container)', (s) => s.sandboxStart],
  ['stage: `agent_ms` (the agent CLI, start → exit)', (s) => s.agent],
  ['stage: `collect_ms` (copy results out; the sandbox is removed after the end)', (s) => s.collect],
  ['the rest: total − the four stages (HTTP, Redis, event delivery)', (s) => s.rest],
];

export function renderReport(r: {
  date: Date;
  machine: Machine;
  server: ServerInfo;
  phases: Phase[];
}): string {
  const m = r.machine;
  const out: string[] = [
    '# Benchmark: the hello runbook, end to end',
    '',
    `Measured ${r.date.toISOString()} against ${r.server.url}: \`examples/hello.md\` through ` +
      `claude-code ${r.server.runtimeVersion} (\`${r.server.image}\`, model \`${r.server.model}\`) and the ` +
      'simulated provider, streamed (`stream: true`), after one warm-up run.',
    '',
    `Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB memory, ${m.os}; ` +
      `Docker ${m.docker}; Node ${m.node}. The benchmark client runs on the same machine.`,
    '',
    'Milliseconds. p50 and p95 are nearest-rank (with 20 runs, p95 is the second slowest). ' +
      'Stages come from `timings` of `GET /v1/runs/{id}`; failed runs are listed, not timed.',
  ];
  for (const p of r.phases) out.push('', ...renderPhase(p));
  out.push('');
  return out.join('\n');
}

function renderPhase(p: Phase): string[] {
  const ok = p.samples.length;
  const perMin = ok > 0 ? (ok / (p.wallMs / 60_000)).toFixed(1) : '0';
  const title = p.concurrency === 1 ? 'one at a time' : `${p.concurrency} at once`;
  const lines = [
    `## ${capitalize(p.name)}: ${p.runs} runs, ${title}`,
    '',
    `${ok} completed with \`hello.txt\`, ${p.failures.length} failed; ` +
      `${(p.wallMs / 1000).toFixed(1)} s wall, ${perMin} completed runs/min.`,
    '',
    '| ms | p50 | p95 | min | max |',
    '|---|--:|--:|--:|--:|',
  ];
  for (const [label, pick] of ROWS) {
    const s = summarize(p.samples.map(pick));
    const cells = s ? [s.p50, s.p95, s.min, s.max].map((v) => String(Math.round(v))) : ['–', '–', '–', '–'];
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
  }
  if (p.failures.length > 0) {
    lines.push('', 'Failed runs:', '');
    for (const f of p.failures) lines.push(`- run ${f.index} (\`${f.runId}\`): ${f.reason}`);
  }
  return lines;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
