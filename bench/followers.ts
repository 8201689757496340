// `npm run bench -- --followers N [--runs R] [--ramp-ms T]`: N clients following the events of R
// runs through one API process (GET /v1/runs/{id}/events), all opened at once or spread evenly over
// T ms. Measures, per client from its own request start, the time to the response headers (first
// byte) and to the first event; the server's own time from request to first event written (its
// jetty_event_stream_first_event_seconds histogram); the CPU both sides spent opening them; the API
// process's memory while it holds them; Redis connections and the hub's followers and streams 100 ms
// after some leave; and whether every follower got every event, in order, to the end (none dropped).
import { readFile } from 'node:fs/promises';
import { get as httpGet, type IncomingMessage } from 'node:http';
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
  /** The API process whose memory and CPU are read (/proc/<pid>); null: not measured. */
  apiPid: number | null;
  /** Spread the opening of the followers evenly over this many ms; 0: all at once. */
  rampMs: number;
  /** Bearer token for /metrics (METRICS_TOKEN on the server), if it asks for one. */
  metricsToken: string | undefined;
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
  /** Milliseconds from the request to the response headers (the first byte). */
  headers?: number;
  /**
   * Milliseconds from its connection being open to the response headers. With all opened at once,
   * one client process makes the requests one after another; this leaves that out.
   */
  headersFromConnect?: number;
  /** Milliseconds from the request to the first event. */
  ttfb?: number;
  ids: string[];
  terminal?: string;
  error?: string;
  abort: AbortController;
  done: Promise<void>;
}

const TERMINAL = new Set(['run.completed', 'run.failed', 'run.cancelled']);

/**
 * One follower on its own connection, by node:http rather than fetch: the client shares the
 * machine's cores with the server, and fetch spent about as much CPU per follower as the API did
 * (1.25 ms against 1.2 ms, 1,000 followers opened at once), which showed in the server's latencies.
 */
function open(url: string, auth: Record<string, string>, runId: string, onFirst: () => void): Follower {
  const abort = new AbortController();
  const f = { runId, t0: performance.now(), ids: [], abort } as unknown as Follower;
  f.done = (async () => {
    let connectedAt: number | undefined;
    try {
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = httpGet(`${url}/v1/runs/${runId}/events`, {
          headers: auth,
          agent: false,
          signal: abort.signal,
        });
        req.once('response', resolve).once('error', reject);
        req.once('socket', (socket) =>
          socket.once('connect', () => {
            connectedAt = performance.now();
          }),
        );
      });
      f.headers = performance.now() - f.t0;
      if (connectedAt !== undefined) f.headersFromConnect = performance.now() - connectedAt;
      if (res.statusCode !== 200) {
        let text = '';
        for await (const chunk of res) text += chunk;
        f.error = `HTTP ${res.statusCode}: ${text.slice(0, 200)}`;
        onFirst();
        return;
      }
      for await (const msg of readSse(res)) {
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

/** CPU milliseconds (user + system) the process has used so far, from /proc/<pid>/stat. */
async function cpuMs(pid: number | null): Promise<number | null> {
  if (pid === null) return null;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, fields 14 and 15, in clock ticks (100 a second on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

/** The API's /metrics, as name{labels} → value. */
async function scrape(o: FollowersOptions): Promise<Map<string, number>> {
  const headers: Record<string, string> = o.metricsToken ? { authorization: `Bearer ${o.metricsToken}` } : {};
  const res = await fetch(`${o.url}/metrics`, { headers });
  if (!res.ok) throw new Error(`GET /metrics answered ${res.status} (set BENCH_METRICS_TOKEN?)`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const FIRST_EVENT = 'jetty_event_stream_first_event_seconds';

/**
 * The server's time to first event of the requests between two scrapes, as the upper bound of
 * the histogram bucket holding percentile `p` (the histogram holds no finer figure).
 */
function serverPercentile(before: Map<string, number>, after: Map<string, number>, p: number): string {
  const buckets: { le: number; n: number }[] = [];
  for (const [name, v] of after) {
    const m = new RegExp(`^${FIRST_EVENT}_bucket\\{le="([^"]+)"\\}$`).exec(name);
    if (m) buckets.push({ le: Number(m[1]), n: v - (before.get(name) ?? 0) });
  }
  buckets.sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.n ?? 0;
  if (total === 0) return '–';
  const hit = buckets.find((b) => b.n >= (p / 100) * total);
  return hit === undefined || hit.le === Number.POSITIVE_INFINITY ? '> 10 s' : `≤ ${hit.le * 1000} ms`;
}

async function runStatuses(o: FollowersOptions, ids: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const id of ids) {
    const res = await fetch(`${o.url}/v1/runs/${id}`, { headers: o.auth });
    const { status } = (await res.json()) as { status: string };
    out.set(status, (out.get(status) ?? 0) + 1);
  }
  return out;
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
  // Past WORKER_CONCURRENCY a run waits in the queue: it is held all the same (a real run whose
  // stream is followed and ended by the cancel), only without a sandbox.
  await new Promise((r) => setTimeout(r, 1000));
  const statuses = await runStatuses(o, runIds);
  const held = [...statuses].map(([s, n]) => `${n} ${s}`).join(', ');
  log(
    `${o.runs} run(s) started (${held}); opening ${o.followers} followers${o.rampMs ? ` over ${o.rampMs} ms` : ' at once'}`,
  );
  const rssBefore = await rssMiB(o.apiPid);
  const clientsBefore = await redisClients(redis);
  const metricsBefore = await scrape(o);

  let firsts = 0;
  let allFirst: () => void = () => undefined;
  const everyFirst = new Promise<void>((r) => {
    allFirst = r;
  });
  const onFirst = () => {
    if (++firsts === o.followers) allFirst();
  };
  const apiCpu0 = await cpuMs(o.apiPid);
  const myCpu0 = process.cpuUsage();
  const t0 = performance.now();
  const fs: Follower[] = [];
  for (let i = 0; i < o.followers; i++) {
    if (o.rampMs > 0) {
      const due = t0 + (i * o.rampMs) / o.followers;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    }
    fs.push(open(o.url, o.auth, runIds[i % o.runs]!, onFirst));
  }
  await everyFirst;
  const openMs = performance.now() - t0;
  const apiCpu1 = await cpuMs(o.apiPid);
  const myCpu = process.cpuUsage(myCpu0);
  const following = fs.filter((f) => f.ttfb !== undefined);
  log(`${following.length} following after ${Math.round(openMs)} ms`);
  await new Promise((r) => setTimeout(r, 500));
  const rssHeld = await rssMiB(o.apiPid);
  const clientsHeld = await redisClients(redis);
  const metricsHeld = await scrape(o);

  // A tenth of the clients leave, and with several runs every client of the last one (its stream
  // is then followed by nobody). 100 ms later, what the process and Redis held for them must be gone.
  const lastRun = o.runs > 1 ? runIds.at(-1) : undefined;
  const leaves = (f: Follower, i: number) => i % 10 === 0 || f.runId === lastRun;
  const leaving = fs.filter(leaves);
  const leftAt = performance.now();
  for (const f of leaving) f.abort.abort();
  await new Promise((r) => setTimeout(r, 100 - (performance.now() - leftAt)));
  const [clientsAfterLeave, metricsAfterLeave] = await Promise.all([redisClients(redis), scrape(o)]);
  const gauge = (m: Map<string, number>, name: string) => m.get(name) ?? Number.NaN;

  // The rest stay to the end: every run is cancelled, and each must see its terminal event.
  log('cancelling the runs; waiting for every follower that stayed to see the end');
  for (const id of runIds) {
    await fetch(`${o.url}/v1/runs/${id}/cancel`, { method: 'POST', headers: o.auth });
  }
  const staying = fs.filter((f, i) => !leaves(f, i));
  await Promise.race([Promise.all(staying.map((f) => f.done)), new Promise((r) => setTimeout(r, 60_000))]);
  log(
    `${staying.filter((f) => f.terminal).length} of ${staying.length} saw the end; reading every run's events`,
  );
  const allIds = new Map<string, string>();
  for (const id of runIds) allIds.set(id, (await eventIds(o, id)).join(' '));
  const dropped = staying.filter(
    (f) => f.error !== undefined || !f.terminal || f.ids.join(' ') !== allIds.get(f.runId),
  );
  const errors = fs.filter((f) => f.error !== undefined);
  for (const f of fs) f.abort.abort();
  redis.disconnect();

  const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
  const ttfbs = sorted(following.map((f) => f.ttfb!));
  const heads = sorted(fs.filter((f) => f.headers !== undefined).map((f) => f.headers!));
  const headsFromConnect = sorted(
    fs.filter((f) => f.headersFromConnect !== undefined).map((f) => f.headersFromConnect!),
  );
  const machine = await describeMachine();
  const ms = (n: number | undefined) => (n === undefined ? '–' : `${Math.round(n)} ms`);
  const cpu = (a: number | null, b: number | null) => (a === null || b === null ? '?' : `${b - a} ms`);
  const orphaned = runIds.filter((id) => !staying.some((f) => f.runId === id)).length;
  const streamsLeft = lastRun ? `, the last of ${orphaned} streams' followers among them` : '';
  const lines = [
    `## Followers: ${o.followers} clients of ${o.runs} run(s), one API process`,
    '',
    renderMachine(machine, new Date()),
    '',
    `Opened ${o.rampMs ? `evenly over ${o.rampMs} ms` : 'all at once'}, by one client process on the same machine. Runs held: ${held} (past WORKER_CONCURRENCY a run waits in the queue, followed like any other, without a sandbox).`,
    '',
    '| metric | value |',
    '|---|---|',
    `| time to first byte (response headers), p50 / p99 | ${ms(percentile(heads, 50))} / ${ms(percentile(heads, 99))} |`,
    `| the same from its connection open, p50 / p99 | ${ms(percentile(headsFromConnect, 50))} / ${ms(percentile(headsFromConnect, 99))} |`,
    `| time to first event, p50 | ${ms(percentile(ttfbs, 50))} |`,
    `| time to first event, p99 | ${ms(percentile(ttfbs, 99))} |`,
    `| time to first event, max | ${ms(ttfbs.at(-1))} |`,
    `| server: request to first event written, p50 / p99 (histogram bucket) | ${serverPercentile(metricsBefore, metricsHeld, 50)} / ${serverPercentile(metricsBefore, metricsHeld, 99)} |`,
    `| all ${o.followers} following after | ${ms(openMs)} |`,
    `| CPU spent meanwhile: API process / benchmark client | ${cpu(apiCpu0, apiCpu1)} / ${Math.round((myCpu.user + myCpu.system) / 1000)} ms |`,
    `| API process RSS before / holding them | ${rssBefore ?? '?'} MiB / ${rssHeld ?? '?'} MiB |`,
    `| hub followers / streams held | ${gauge(metricsHeld, 'jetty_event_followers')} / ${gauge(metricsHeld, 'jetty_event_streams_followed')} |`,
    `| 100 ms after ${leaving.length} left${streamsLeft}: hub followers / streams | ${gauge(metricsAfterLeave, 'jetty_event_followers')} / ${gauge(metricsAfterLeave, 'jetty_event_streams_followed')} |`,
    `| Redis connections before / holding them / 100 ms after they left | ${clientsBefore} / ${clientsHeld} / ${clientsAfterLeave} |`,
    `| followers that missed an event or the end (of ${staying.length} that stayed) | ${dropped.length} |`,
    `| followers refused or failed | ${errors.length}${errors[0] ? ` (first: ${errors[0].error})` : ''} |`,
    '',
  ];
  return { markdown: lines.join('\n'), ok: dropped.length === 0 && errors.length === 0 };
}

/** The ids of the run's events, read whole once the run has ended. */
async function eventIds(o: FollowersOptions, runId: string): Promise<string[]> {
  const res = await fetch(`${o.url}/v1/runs/${runId}/events`, { headers: o.auth });
  const ids: string[] = [];
  if (res.body) for await (const msg of readSse(res.body)) if (msg.id) ids.push(msg.id);
  return ids;
}
