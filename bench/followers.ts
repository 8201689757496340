// `npm run bench -- --followers N [--runs R]`: N clients following the events of R runs through one
// API process (GET /v1/runs/{id}/events), all opened at once. Measures time to the first event, the
// API process's memory while it holds them, Redis connections, how fast a leaving client's Redis
// resources go, and whether every follower got every event to the end (none dropped).
import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { describeMachine, renderMachine } from './machine.js';
import { readSse } from './sse.js';
import { percentile } from './stats.js';

export interface FollowersOptions {
  url: string;
  auth: Record<string, string>;
  followers: number;
  runs: number;
  redisUrl: string;
  /** The API process whose memory is read (/proc/<pid>/status); null: not measured. */
  apiPid: number | null;
}

// Long enough to hold every follower while it is measured; the runs are cancelled after.
const HOLD_RUNBOOK = [
  '---',
  'agent: claude-code',
  'model_provider: simulated',
  '---',
  '# Hold',
  'Wait for the benchmark.',
  '',
  '```simulate',
  '- sleep_ms: 300000',
  '- say: held',
  '```',
  '',
].join('\n');

interface Follower {
  runId: string;
  t0: number;
  /** Milliseconds from the request to the first event. */
  ttfb?: number;
  ids: string[];
  terminal?: string;
  error?: string;
  abort: AbortController;
  done: Promise<void>;
}

const TERMINAL = new Set(['run.completed', 'run.failed', 'run.cancelled']);

function open(url: string, auth: Record<string, string>, runId: string, onFirst: () => void): Follower {
  const abort = new AbortController();
  const f = { runId, t0: performance.now(), ids: [], abort } as unknown as Follower;
  f.done = (async () => {
    try {
      const res = await fetch(`${url}/v1/runs/${runId}/events`, { headers: auth, signal: abort.signal });
      if (!res.ok || !res.body) {
        f.error = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
        onFirst();
        return;
      }
      for await (const msg of readSse(res.body)) {
        if (f.ttfb === undefined) {
          f.ttfb = performance.now() - f.t0;
          onFirst();
        }
        if (msg.id) f.ids.push(msg.id);
        if (TERMINAL.has(msg.event)) f.terminal = msg.event;
      }
    } catch (e) {
      if (!abort.signal.aborted) f.error = (e as Error).message;
      if (f.ttfb === undefined) onFirst();
    }
  })();
  return f;
}

async function startRuns(o: FollowersOptions): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < o.runs; i++) {
    const res = await fetch(`${o.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...o.auth },
      body: JSON.stringify({
        stream: false,
        messages: [
          { role: 'system', content: HOLD_RUNBOOK },
          { role: 'user', content: 'Execute the runbook.' },
        ],
        jetty: { runbook: true, model_provider: 'simulated', timeout_hint: 0 },
      }),
    });
    if (res.status !== 202) throw new Error(`starting a run answered ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { jetty_metadata: { trajectory_id: string } };
    ids.push(body.jetty_metadata.trajectory_id);
  }
  return ids;
}

async function rssMiB(pid: number | null): Promise<number | null> {
  if (pid === null) return null;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

async function redisClients(redis: Redis): Promise<number> {
  const list = (await redis.client('LIST')) as string;
  return list.trim().split('\n').length - 1; // less this probe
}

const log = (line: string) => process.stderr.write(`bench followers: ${line}\n`);

export async function benchFollowers(o: FollowersOptions): Promise<{ markdown: string; ok: boolean }> {
  const redis = new Redis(o.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const runIds = await startRuns(o);
  log(`${o.runs} run(s) started; opening ${o.followers} followers at once`);
  const rssBefore = await rssMiB(o.apiPid);
  const clientsBefore = await redisClients(redis);

  let firsts = 0;
  let allFirst: () => void = () => undefined;
  const everyFirst = new Promise<void>((r) => {
    allFirst = r;
  });
  const onFirst = () => {
    if (++firsts === o.followers) allFirst();
  };
  const t0 = performance.now();
  const fs = Array.from({ length: o.followers }, (_, i) => open(o.url, o.auth, runIds[i % o.runs]!, onFirst));
  await everyFirst;
  const openMs = performance.now() - t0;
  const held = fs.filter((f) => f.ttfb !== undefined);
  log(`${held.length} following after ${Math.round(openMs)} ms`);
  await new Promise((r) => setTimeout(r, 500));
  const rssHeld = await rssMiB(o.apiPid);
  const clientsHeld = await redisClients(redis);

  // A tenth of the clients leave; 100 ms later, what Redis holds for them must be gone.
  const leaving = fs.filter((_, i) => i % 10 === 0);
  for (const f of leaving) f.abort.abort();
  await new Promise((r) => setTimeout(r, 100));
  const clientsAfterLeave = await redisClients(redis);

  // The rest stay to the end: every run is cancelled, and each must see its terminal event.
  for (const id of runIds) {
    await fetch(`${o.url}/v1/runs/${id}/cancel`, { method: 'POST', headers: o.auth });
  }
  const staying = fs.filter((_, i) => i % 10 !== 0);
  await Promise.race([Promise.all(staying.map((f) => f.done)), new Promise((r) => setTimeout(r, 60_000))]);
  const lastIds = new Map<string, string>();
  for (const id of runIds) lastIds.set(id, await lastEventId(o, id));
  const dropped = staying.filter(
    (f) => f.error !== undefined || !f.terminal || f.ids.at(-1) !== lastIds.get(f.runId),
  );
  const errors = fs.filter((f) => f.error !== undefined);
  for (const f of fs) f.abort.abort();
  redis.disconnect();

  const ttfbs = held.map((f) => f.ttfb!).sort((a, b) => a - b);
  const machine = await describeMachine();
  const ms = (n: number | undefined) => (n === undefined ? '–' : `${Math.round(n)} ms`);
  const lines = [
    `## Followers: ${o.followers} clients of ${o.runs} run(s), one API process`,
    '',
    renderMachine(machine, new Date()),
    '',
    '| metric | value |',
    '|---|---|',
    `| time to first event, p50 | ${ms(percentile(ttfbs, 50))} |`,
    `| time to first event, p99 | ${ms(percentile(ttfbs, 99))} |`,
    `| time to first event, max | ${ms(ttfbs.at(-1))} |`,
    `| all ${o.followers} following after | ${ms(openMs)} |`,
    `| API process RSS before / holding them | ${rssBefore ?? '?'} MiB / ${rssHeld ?? '?'} MiB |`,
    `| Redis connections before / holding them / 100 ms after ${leaving.length} left | ${clientsBefore} / ${clientsHeld} / ${clientsAfterLeave} |`,
    `| followers that missed an event or the end (of ${staying.length} that stayed) | ${dropped.length} |`,
    `| followers refused or failed | ${errors.length}${errors[0] ? ` (first: ${errors[0].error})` : ''} |`,
    '',
  ];
  return { markdown: lines.join('\n'), ok: dropped.length === 0 && errors.length === 0 };
}

/** The id of the run's last event, read whole once the run has ended. */
async function lastEventId(o: FollowersOptions, runId: string): Promise<string> {
  const res = await fetch(`${o.url}/v1/runs/${runId}/events`, { headers: o.auth });
  let last = '';
  if (res.body) for await (const msg of readSse(res.body)) if (msg.id) last = msg.id;
  return last;
}
