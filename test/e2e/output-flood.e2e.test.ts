import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { type Server, startServer } from '../../src/main/compose.js';
import { generateApiKey } from '../../src/tenancy/api-keys.js';
import { bearer, postJson, runbookRequest, waitFor } from '../support/harness.js';
import { startRedis, type TestRedis } from '../support/redis.js';

// A sandbox that floods its stdout: 1 GiB without a line break, then 64 MiB of short lines. The
// worker (its own process, as in production) must stay small, carry the run to its end, and say
// which limits the run reached.
const docker = new Dockerode();
const SERVER = path.resolve(import.meta.dirname, '../../dist/src/main/server.js');
const MiB = 1024 * 1024;
/**
 * The agent's own stdout, as a tool's command reaches it: the sandbox's agent process is the shell
 * whose $0 is `jetty-agent` (src/sandbox/docker-driver.ts); the bracket keeps this line from matching
 * itself.
 */
const AGENT_OUT = "/proc/$(grep -la 'jetty-[a]gent' /proc/[0-9]*/cmdline | head -1 | cut -d/ -f3)/fd/1";
const RUNBOOK = [
  '---',
  'agent: claude-code',
  '---',
  '# Floods its output',
  '```simulate',
  `- run: o=${AGENT_OUT}; head -c 1G /dev/zero | tr '\\0' x >$o; echo >$o; echo one`,
  `- run: yes '${'y'.repeat(99)}' | head -c 64M >${AGENT_OUT}; echo two`,
  '- say: flooded',
  '```',
  '',
].join('\n');

let redis: TestRedis;
let api: Server;
let worker: ChildProcess | undefined;
let dataDir = '';
let logFile = '';
let instance = '';
const KEY = generateApiKey();
const get = (u: string) => fetch(`${api.url}${u}`, { headers: bearer(KEY) });

beforeAll(async () => {
  redis = await startRedis();
  dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-flood-'));
  instance = `flood-${randomBytes(4).toString('hex')}`;
  const env = {
    REDIS_URL: redis.url,
    JETTY_KEY_PREFIX: instance,
    DATA_DIR: dataDir,
    INSTANCE_NAME: instance,
    JETTY_BOOTSTRAP_COLLECTION: 'flood-tests',
    JETTY_BOOTSTRAP_API_KEY: KEY,
    LOG_LEVEL: 'info',
  };
  api = await startServer(loadConfig({ ...env, PORT: '0' }), {
    role: 'api',
    logger: pino({ level: 'silent' }),
  });
  logFile = path.join(dataDir, 'worker.log');
  const fd = openSync(logFile, 'a');
  worker = spawn(process.execPath, [SERVER, '--role', 'worker'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
});

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker?.once('exit', r));
    worker.kill('SIGTERM');
    await exited;
  }
  const left = await docker.listContainers({ all: true, filters: { label: [`jetty.instance=${instance}`] } });
  for (const c of left) await docker.getContainer(c.Id).remove({ force: true });
  await api?.close();
  await redis?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** CPU seconds the process has used (user + system), from /proc. */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The process's resident memory in bytes, from /proc (0 once it is gone). */
function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface Ev {
  type: string;
  data: Record<string, unknown>;
}

describe('a sandbox flooding its stdout (1 GiB in one line, then 64 MiB of short lines)', () => {
  // The time goes to the sandbox and dockerd moving 1 GiB (the worker uses ~12 CPU s of it): about
  // a minute, more on a busy host, hence the generous deadlines.
  it('leaves the worker under 300 MB, ends the run, and the run says which limits it reached', async () => {
    const pid = worker?.pid ?? 0;
    await waitFor(async () => readFileSync(logFile, 'utf8').includes('worker started'), 20_000, 'the worker');
    const res = await postJson(
      `${api.url}/v1/chat/completions`,
      runbookRequest(RUNBOOK, { stream: false, jetty: { timeout_hint: 0, timeout_sec: 150 } }),
      bearer(KEY),
    );
    const runId = ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata
      .trajectory_id;
    const idle = rssOf(pid);
    let peak = 0;
    const started = Date.now();
    const cpuBefore = cpuOf(pid);
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid));
    }, 100);
    let record: Record<string, unknown>;
    try {
      record = await waitFor(
        async () => {
          const r = (await (await get(`/v1/runs/${runId}`)).json()) as Record<string, unknown>;
          return r.status === 'completed' || r.status === 'failed' ? r : undefined;
        },
        160_000,
        'the flooded run to end',
      );
    } catch (err) {
      console.error(readFileSync(logFile, 'utf8').slice(-4000));
      throw err;
    } finally {
      clearInterval(sampler);
    }
    console.log(
      `flood: worker RSS ${(idle / MiB).toFixed(0)} MiB idle, ${(peak / MiB).toFixed(0)} MiB at peak, ${(cpuOf(pid) - cpuBefore).toFixed(1)} CPU s; run ended ${record.status} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(300 * 1000 * 1000);
    expect(record.status).toBe('completed');
    expect(record.final_text).toBe('flooded');
    expect(record.limits_hit).toEqual(expect.arrayContaining(['max_line_bytes', 'max_events']));

    const { events } = (await (await get(`/v1/runs/${runId}/trajectory`)).json()) as { events: Ev[] };
    const notices = events.filter((e) => e.type === 'run.warning' && e.data.code === 'output_limit');
    expect(notices.map((e) => String(e.data.message).match(/RUN_MAX_\w+/)?.[0]).sort()).toEqual([
      'RUN_MAX_EVENTS',
      'RUN_MAX_LINE_BYTES',
    ]);
    expect(events.at(-1)?.type).toBe('run.completed');
    // Bounded: the default limits, the notices and the end (of 670,000 lines printed).
    expect(events.length).toBeLessThanOrEqual(20_000 + 3);
  }, 200_000);
});
