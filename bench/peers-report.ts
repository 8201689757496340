// The report of `npm run bench -- --vs-bare`: the server, the bare claude CLI and
// claude-max-api-proxy, each figure with its ratio to the bare CLI.
import type { Machine } from './machine.js';
import { percentile } from './stats.js';

export const PEERS = ['server', 'bare', 'proxy'] as const;
export type PeerName = (typeof PEERS)[number];

/**
 * The order of round `round` (1-based): the peers rotated by one each round, so that over every
 * three rounds each peer goes first, second and third once and none always follows another.
 */
export function roundOrder<T>(peers: readonly T[], round: number): T[] {
  const k = peers.length === 0 ? 0 : (round - 1) % peers.length;
  return [...peers.slice(k), ...peers.slice(0, k)];
}

/** Milliseconds from each counted run's start to its first output and to its end. */
export interface PeerTimes {
  first: number[];
  done: number[];
}

export interface VsPeersResult {
  date: Date;
  machine: Machine;
  loadAfter: [number, number, number];
  serverUrl: string;
  /** The server was started with WARM_POOL_SIZE=0 (the caller says so: `--cold-server`). */
  coldServer: boolean;
  cliVersion: string;
  proxyVersion: string;
  times: Record<PeerName, PeerTimes>;
  /** The server's `timings.agent_ms`: the CLI inside the sandbox. */
  serverAgent: number[];
  /** The server's request → first agent event (the CLI's first event of the run, not the queue's). */
  serverFirstAgent: number[];
  /** Runs with several in flight, per peer; absent with BENCH_CONCURRENCY=1. */
  concurrent?: { inFlight: number; blocks: number; peers: Record<PeerName, ConcurrentTotals> };
  failures: string[];
}

/** A peer's runs with several in flight: how many completed in how long, and the CPU used meanwhile. */
export interface ConcurrentTotals {
  completed: number;
  wallMs: number;
  /** The machine's busy CPU time over the peer's blocks. */
  machineCpuMs: number;
  /** By process group (bench/cpu.ts). */
  groups: Record<string, number>;
}

/** Completed runs per minute of wall time, or undefined when nothing completed. */
export function throughput(t: ConcurrentTotals): number | undefined {
  return t.completed === 0 || t.wallMs === 0 ? undefined : (t.completed * 60_000) / t.wallMs;
}

/** CPU milliseconds per completed run, or undefined when nothing completed. */
export function perRun(ms: number, t: ConcurrentTotals): number | undefined {
  return t.completed === 0 ? undefined : ms / t.completed;
}

/** CPU groups below this many ms per run for every peer are summed into "the rest". */
const MIN_ROW_MS = 5;

function renderConcurrent(c: NonNullable<VsPeersResult['concurrent']>): string[] {
  const { server, bare, proxy } = c.peers;
  const rate = (x: number | undefined) => (x === undefined ? '–' : x.toFixed(1));
  const row = (label: string, f: (t: ConcurrentTotals) => number | undefined, show = fmt) => {
    const [s, b, p] = [f(server), f(bare), f(proxy)];
    return `| ${label} | ${show(s)} | ${show(b)} | ${show(p)} | ${ratio(s, b)} | ${ratio(p, b)} |`;
  };
  const groups = [...new Set([server, bare, proxy].flatMap((t) => Object.keys(t.groups)))]
    // Rows under MIN_ROW_MS per run for every peer are left to "unattributed"-like noise.
    .filter((g) => [server, bare, proxy].some((t) => (perRun(t.groups[g] ?? 0, t) ?? 0) >= MIN_ROW_MS))
    .sort((a, b) => (server.groups[b] ?? 0) - (server.groups[a] ?? 0) || a.localeCompare(b));
  const shown = (t: ConcurrentTotals) => groups.reduce((n, g) => n + (t.groups[g] ?? 0), 0);
  return [
    '',
    `## ${c.inFlight} in flight`,
    '',
    `Each peer ran \`BENCH_RUNS\` runs with ${c.inFlight} in flight (a slot starts its next run when its last ` +
      `one ends), in ${c.blocks} blocks per peer, the blocks rotated like the rounds above. The host peers get ` +
      "one simulated provider, results directory and HOME per slot. CPU is the machine's busy time over the " +
      "peer's blocks (all cores, everything running: the bench client too) per completed run, then split by " +
      'process (sampled every 100 ms from /proc; a process shorter than that, or the end of one after its last ' +
      'sample, is missed: it is in "the rest"). The server needs `WORKER_CONCURRENCY` of at least ' +
      `${c.inFlight} for this to measure it rather than its queue.`,
    '',
    '| metric | server | bare CLI | proxy | server / bare | proxy / bare |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    row('runs/min', throughput, rate),
    row('CPU ms per run, whole machine', (t) => perRun(t.machineCpuMs, t)),
    ...groups.map((g) => row(`… ${g}`, (t) => perRun(t.groups[g] ?? 0, t))),
    row('… the rest (smaller groups, unattributed)', (t) =>
      perRun(Math.max(0, t.machineCpuMs - shown(t)), t),
    ),
  ];
}

const fmt = (ms: number | undefined) => (ms === undefined ? '–' : `${Math.round(ms)}`);

/** `a / b` as `0.90×`, or `–` when either is missing. */
export function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? '–' : `${(a / b).toFixed(2)}×`;
}

/** Sequential throughput: runs per minute of the time spent on that peer's runs alone. */
export function perMinute(ms: readonly number[]): number | undefined {
  if (ms.length === 0) return undefined;
  return (ms.length * 60_000) / ms.reduce((s, x) => s + x, 0);
}

export function renderVsPeers(r: VsPeersResult): string {
  const m = r.machine;
  const { server, bare, proxy } = r.times;
  const row = (label: string, s: number | undefined, b: number | undefined, p: number | undefined, f = fmt) =>
    `| ${label} | ${f(s)} | ${f(b)} | ${f(p)} | ${ratio(s, b)} | ${ratio(p, b)} |`;
  const rate = (x: number | undefined) => (x === undefined ? '–' : x.toFixed(1));
  const pct = (t: PeerTimes, key: keyof PeerTimes, p: number) => percentile(t[key], p);
  return [
    `# The server, the bare claude CLI and claude-max-api-proxy (hello runbook, simulated provider)${r.coldServer ? ', no warm pool' : ''}`,
    '',
    `${r.date.toISOString()}; ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB; ${m.os}; Docker ${m.docker}; ` +
      `Node ${m.node}. Load average (1/5/15 min) ${m.load.join(' / ')} before, ${r.loadAfter.join(' / ')} after: ` +
      'the machine was shared with other work, so read the figures as rough.',
    '',
    `- **server**: \`POST /v1/chat/completions\` to ${r.serverUrl}, request → \`data: [DONE]\`: the claude CLI ` +
      'in a Docker sandbox, the gateway, the worker, Redis, the event stream. First chunk: the first ' +
      '`chat.completion.chunk` (the run is queued).',
    `- **bare CLI**: \`claude -p\` ${r.cliVersion} (the project's pin, installed under bench/peers) run headless ` +
      'on the host, spawn → exit, same prompt, same flags, a fresh HOME each run. First chunk: its first stdout ' +
      'bytes (the stream-json `init` line).',
    `- **proxy**: claude-max-api-proxy ${r.proxyVersion} (pinned under bench/peers), \`POST /v1/chat/completions\` ` +
      'with `stream: true` and the same messages (the runbook with its results dir filled in, then ' +
      '"Execute the runbook."), request → `data: [DONE]`. It spawns the same pinned CLI (first on its PATH) per ' +
      'request with its own fixed flags, one HOME for all runs. First chunk: its first `data:` chunk, which ' +
      "is the model's first text.",
    "- All three are answered by the project's simulated provider on loopback with the runbook's `simulate` " +
      'script; every counted run is checked to have made model calls to it, and to have written `hello.txt` = `hi`.',
    '- The proxy cannot pass `--dangerously-skip-permissions` (or any flag) to its CLI, and in `--print` mode the ' +
      "CLI refuses the runbook's Bash calls without it: the stream still ends with the script's \"hello.txt is " +
      'written" and `[DONE]`, but no file exists. The benchmark therefore gives its CLI `permissions.defaultMode: ' +
      '"bypassPermissions"` in the inherited HOME\'s `.claude/settings.json`. The host CLIs run as root with ' +
      '`IS_SANDBOX=1` when the benchmark does.',
    `- Rounds rotate the order (server, bare, proxy; bare, proxy, server; …), one run at a time, after one ` +
      `uncounted warm-up of each. ${server.done.length} server, ${bare.done.length} bare and ` +
      `${proxy.done.length} proxy runs counted. Milliseconds, nearest-rank percentiles.`,
    r.coldServer
      ? '- The server was started with `WARM_POOL_SIZE=0`: every run creates a sandbox and starts the CLI in it, ' +
        'as the bare CLI and the proxy start one on every run.'
      : '- The server keeps warm sandboxes (`WARM_POOL_SIZE`, default 2) whose CLI is already started and waiting ' +
        'for its prompt, so its `[DONE]` time holds no CLI start-up, which the bare CLI and the proxy pay on every ' +
        'run. bench/RESULTS-vs-bare-cold.md is the same comparison with `WARM_POOL_SIZE=0`.',
    '',
    '| metric | server | bare CLI | proxy | server / bare | proxy / bare |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    row('request → `[DONE]` p50', pct(server, 'done', 50), pct(bare, 'done', 50), pct(proxy, 'done', 50)),
    row('request → `[DONE]` p90', pct(server, 'done', 90), pct(bare, 'done', 90), pct(proxy, 'done', 90)),
    row('first chunk p50', pct(server, 'first', 50), pct(bare, 'first', 50), pct(proxy, 'first', 50)),
    row('first chunk p90', pct(server, 'first', 90), pct(bare, 'first', 90), pct(proxy, 'first', 90)),
    row(
      'server `agent_ms` p50 (the CLI in the sandbox)',
      percentile(r.serverAgent, 50),
      pct(bare, 'done', 50),
      undefined,
    ),
    row('server: request → first agent event p50', percentile(r.serverFirstAgent, 50), undefined, undefined),
    row('server: request → first agent event p90', percentile(r.serverFirstAgent, 90), undefined, undefined),
    row('runs/min, sequential', perMinute(server.done), perMinute(bare.done), perMinute(proxy.done), rate),
    ...(r.concurrent ? renderConcurrent(r.concurrent) : []),
    '',
    r.failures.length === 0
      ? 'Every run completed and wrote `hello.txt` = `hi`.'
      : `Failed runs (left out of the figures):\n\n${r.failures.map((f) => `- ${f}`).join('\n')}`,
    '',
  ].join('\n');
}
