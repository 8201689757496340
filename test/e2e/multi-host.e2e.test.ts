import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { generateApiKey } from '../../src/tenancy/api-keys.js';
import { generateMasterKey } from '../../src/tenancy/secrets.js';
import { bearer, postJson, runbookRequest, waitFor } from '../support/harness.js';
import { startMinio, type TestMinio } from '../support/minio.js';
import { freePort, startRedis, type TestRedis } from '../support/redis.js';
import { removeDeploymentContainers } from '../support/sandboxes.js';

// "Several hosts": one API and two worker processes, each with its own DATA_DIR (no path shared
// between them), sharing only Redis and an object store (a real MinIO on loopback). Real Docker,
// the real claude CLI, the simulated model.
const docker = new Dockerode();
const SERVER = path.resolve(import.meta.dirname, '../../dist/src/main/server.js');
const MiB = 1024 ** 2;
const PREFIX = 'deploy/';

interface Proc {
  child: ChildProcess;
  dataDir: string;
  log: string;
  /** A worker: its name as run.started shows it contains `-<pid>-`. */
  owns: (name: string | undefined) => boolean;
}
interface Art {
  path: string;
  size: number;
  sha256: string;
}
interface Rec {
  id: string;
  status: string;
  error?: { code: string; message: string };
  artifacts: Art[];
}
interface Ev {
  type: string;
  attempt?: number;
  data: { worker?: string; line?: string; reason?: string; error?: { code: string; message: string } };
}

let redis: TestRedis;
let minio: TestMinio;
let bucket = '';
let store: S3ObjectStore;
let env: Record<string, string> = {};
let apiUrl = '';
let api: Proc;
const workers: Proc[] = [];
const procs: Proc[] = [];
const KEY = generateApiKey();
const COLLECTION = 'hosts';
const get = (p: string, headers: Record<string, string> = {}) =>
  fetch(`${apiUrl}${p}`, { headers: { ...bearer(KEY), ...headers } });

beforeAll(async () => {
  [redis, minio] = await Promise.all([startRedis(), startMinio()]);
  bucket = await minio.bucket();
  store = new S3ObjectStore({
    bucket,
    prefix: PREFIX,
    endpoint: minio.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey },
    forcePathStyle: true,
    connectTimeoutMs: 1000,
    requestTimeoutMs: 10_000,
    maxAttempts: 1,
    uploadConcurrency: 2,
    partBytes: 8 * MiB,
  });
  env = {
    REDIS_URL: redis.url,
    JETTY_KEY_PREFIX: `hosts-${randomBytes(4).toString('hex')}`,
    JETTY_MASTER_KEY: generateMasterKey(),
    ...minio.env(bucket, PREFIX),
    S3_MAX_ATTEMPTS: '2',
    S3_CONNECT_TIMEOUT_MS: '1000',
    BLOB_SWEEP_MS: '1000',
    WORKER_LOCK_MS: '5000',
    WORKER_CONCURRENCY: '2',
    LOG_LEVEL: 'info',
    // The test polls 20 runs and downloads every artifact twice: well past the per-key rate limit.
    RATE_LIMIT_MAX: '0',
  };
  const port = await freePort();
  api = await spawnServer('api', {
    PORT: String(port),
    JETTY_BOOTSTRAP_COLLECTION: COLLECTION,
    JETTY_BOOTSTRAP_API_KEY: KEY,
  });
  apiUrl = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${apiUrl}/readyz`).catch(() => null))?.ok, 30_000, 'the API');
  for (let i = 0; i < 2; i++) workers.push(await startWorker());
}, 180_000);

afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail') {
    for (const p of procs) console.error(`--- ${p.log}\n${readFileSync(p.log, 'utf8').slice(-3000)}`);
  }
});

afterAll(async () => {
  await Promise.all(procs.map((p) => stopProc(p)));
  const left = await removeDeploymentContainers(docker, env.JETTY_KEY_PREFIX!);
  store?.destroy();
  await minio?.destroy();
  await redis?.stop();
  for (const p of procs) await rm(p.dataDir, { recursive: true, force: true });
  expect(left.map((c) => c.Names)).toEqual([]);
}, 60_000);

/** A server process with a DATA_DIR of its own. */
async function spawnServer(role: 'api' | 'worker', extra: Record<string, string>): Promise<Proc> {
  const dataDir = await mkdtemp(path.join(tmpdir(), `jetty-host-${role}-`));
  const log = path.join(dataDir, 'server.log');
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [SERVER, '--role', role], {
    env: { PATH: process.env.PATH ?? '', ...env, DATA_DIR: dataDir, ...extra },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const p: Proc = { child, dataDir, log, owns: (name) => name?.includes(`-${child.pid}-`) ?? false };
  procs.push(p);
  return p;
}

/** A worker process, once it says it is ready. */
async function startWorker(): Promise<Proc> {
  const http = await freePort();
  const w = await spawnServer('worker', { WORKER_HTTP_PORT: String(http) });
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${http}/readyz`).catch(() => null))?.ok,
    30_000,
    'a worker',
  );
  return w;
}

async function stopProc(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  await exited;
}

async function submit(runbook: string, jetty: Record<string, unknown> = {}): Promise<string> {
  const res = await postJson(
    `${apiUrl}/v1/chat/completions`,
    runbookRequest(runbook, { stream: false, jetty: { timeout_hint: 0, ...jetty } }),
    bearer(KEY),
  );
  expect(res.status).toBe(202);
  return ((await res.json()) as { jetty_metadata: { trajectory_id: string } }).jetty_metadata.trajectory_id;
}

const record = async (id: string) => (await (await get(`/v1/runs/${id}`)).json()) as Rec;
const events = async (id: string) =>
  ((await (await get(`/v1/runs/${id}/trajectory`)).json()) as { events: Ev[] }).events;

async function ended(id: string, timeoutMs: number): Promise<Rec> {
  return waitFor(
    async () => {
      const r = await record(id);
      return r.status !== 'pending' && r.status !== 'running' ? r : null;
    },
    timeoutMs,
    `run ${id} to end`,
  );
}

async function sha256Of(res: Response): Promise<string> {
  const h = createHash('sha256');
  for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) h.update(c);
  return h.digest('hex');
}

/** Drops what Redis holds of a run, as its retention does: from now on it is read from the store. */
async function expireFromRedis(id: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const r = new Redis(redis.url);
  try {
    const keys = (await r.keys(`${env.JETTY_KEY_PREFIX}:*${id}*`)).filter((k) => !k.includes(':bull:'));
    if (keys.length > 0) await r.del(...keys);
  } finally {
    r.disconnect();
  }
}

const storedKeys = async (prefix: string) => {
  const out: string[] = [];
  for await (const o of store.list(prefix)) out.push(o.key);
  return out;
};

const filesUnder = async (dir: string) =>
  (await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []))
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));

const twoArtifacts = [
  '# Two files',
  '```simulate',
  '- run: mkdir -p /app/results/sub && head -c 3000 /dev/urandom > /app/results/sub/noise.bin && date +%s%N > /app/results/stamp.txt',
  '- sleep_ms: 300',
  '- say: done',
  '```',
  '',
].join('\n');

describe('API and two workers on separate data directories, sharing only Redis and an object store', () => {
  it('20 runs across both workers: every artifact downloads through the API with its sha256', async () => {
    const t0 = Date.now();
    const ids = await Promise.all(Array.from({ length: 20 }, () => submit(twoArtifacts)));
    const recs = await Promise.all(ids.map((id) => ended(id, 240_000)));
    const minutes = (Date.now() - t0) / 60_000;
    console.log(
      `multi-host: 20 runs on 2 workers in ${(minutes * 60).toFixed(1)} s: ${(20 / minutes).toFixed(1)} runs/min`,
    );
    expect(recs.map((r) => r.status)).toEqual(ids.map(() => 'completed'));
    const by = new Set<string>();
    for (const id of ids) {
      const started = (await events(id)).find((e) => e.type === 'run.started');
      const w = workers.find((p) => p.owns(started?.data.worker));
      expect(w, `the worker of ${id}`).toBeDefined();
      by.add(w!.dataDir);
    }
    expect(by.size).toBe(2);
    for (const rec of recs) {
      expect(rec.artifacts.map((a) => a.path).sort()).toEqual(['stamp.txt', 'sub/noise.bin']);
      for (const a of rec.artifacts) {
        for (const p of [
          `/v1/runs/${rec.id}/artifacts/${a.path}`,
          `/api/v1/file/${COLLECTION}/run/${rec.id}/${a.path}`,
        ]) {
          const res = await get(p);
          expect(res.status, p).toBe(200);
          if (p.startsWith('/v1/')) expect(res.headers.get('x-content-sha256')).toBe(a.sha256);
          expect(await sha256Of(res), p).toBe(a.sha256);
        }
      }
    }
    // Nothing of any run is on a host: the objects are in the store, no process has a blobs dir.
    for (const p of procs) expect(await filesUnder(path.join(p.dataDir, 'blobs'))).toEqual([]);
    for (const w of workers) expect(await filesUnder(path.join(w.dataDir, 'scratch'))).toEqual([]);
    expect(await storedKeys(`runs/${ids[0]}/`)).toEqual(
      expect.arrayContaining([`runs/${ids[0]}/trajectory.json`, `runs/${ids[0]}/artifacts.json`]),
    );

    // A finished run Redis has let go: its record, trajectory and artifacts come from the store.
    const gone = recs[3]!;
    const before = await events(gone.id);
    await expireFromRedis(gone.id);
    expect((await record(gone.id)).status).toBe('completed');
    const traj = (await (await get(`/v1/runs/${gone.id}/trajectory`)).json()) as { events: Ev[]; run: Rec };
    expect(traj.run.id).toBe(gone.id);
    expect(traj.events.map((e) => e.type)).toEqual(before.map((e) => e.type));
    expect(traj.events.at(-1)?.type).toBe('run.completed');
    const a = gone.artifacts[0]!;
    expect(await sha256Of(await get(`/v1/runs/${gone.id}/artifacts/${a.path}`))).toBe(a.sha256);
  }, 300_000);

  it('an upload made through the API reaches sandboxes on either worker', async () => {
    const content = `id,value\n${randomBytes(8).toString('hex')},1\n`;
    const fd = new FormData();
    fd.append('files', new Blob([content]), 'input.csv');
    const up = await fetch(`${apiUrl}/api/v1/sandbox/upload`, {
      method: 'POST',
      headers: bearer(KEY),
      body: fd,
    });
    expect(up.status).toBe(201);
    const { file_paths } = (await up.json()) as { file_paths: string[] };
    // The upload is in the store, not on the API's host.
    expect(await filesUnder(path.join(api.dataDir, 'blobs'))).toEqual([]);
    const runbook = [
      '# Read the input',
      '```simulate',
      '- run: mkdir -p /app/results && sha256sum /app/assets/input.csv | cut -d" " -f1 > /app/results/seen.txt',
      '- sleep_ms: 1500',
      '- say: read',
      '```',
      '',
    ].join('\n');
    const want = createHash('sha256').update(content).digest('hex');
    const seenBy = new Set<string>();
    // Four at once on two workers of two slots each: both take some.
    for (let round = 0; round < 3 && seenBy.size < 2; round++) {
      const ids = await Promise.all(Array.from({ length: 4 }, () => submit(runbook, { file_paths })));
      for (const id of ids) {
        const rec = await ended(id, 120_000);
        expect(rec.status).toBe('completed');
        const seen = await (await get(`/v1/runs/${id}/artifacts/seen.txt`)).text();
        expect(seen.trim()).toBe(want);
        const started = (await events(id)).find((e) => e.type === 'run.started');
        const w = workers.find((p) => p.owns(started?.data.worker));
        seenBy.add(w!.dataDir);
      }
    }
    expect(seenBy.size).toBe(2);
  }, 300_000);

  it('a 200 MB artifact downloads with the API RSS flat; Range requests return the bytes', async () => {
    const id = await submit(
      [
        '# Big',
        '```simulate',
        '- run: mkdir -p /app/results && head -c 209715200 /dev/urandom > /app/results/big.bin',
        '- say: wrote it',
        '```',
        '',
      ].join('\n'),
    );
    const rec = await ended(id, 240_000);
    expect(rec.status).toBe('completed');
    const big = rec.artifacts.find((a) => a.path === 'big.bin')!;
    expect(big.size).toBe(200 * MiB);

    const rss = () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${api.child.pid}/status`, 'utf8'));
      return Number(m?.[1]) * 1024;
    };
    const base = rss();
    let peak = base;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rss());
    }, 50);
    // Read slowly for a while (a client on a slow link): the API must wait, not buffer the file.
    const res = await get(`/v1/runs/${id}/artifacts/big.bin`);
    expect(res.status).toBe(200);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(Number(res.headers.get('content-length'))).toBe(big.size);
    const reader = res.body!.getReader();
    const h = createHash('sha256');
    const OFFSET = 123_456_789;
    const window = Buffer.alloc(100);
    let at = 0;
    let paused = false;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      h.update(value);
      const from = Math.max(OFFSET, at);
      const to = Math.min(OFFSET + 100, at + value.length);
      if (from < to) Buffer.from(value.subarray(from - at, to - at)).copy(window, from - OFFSET);
      at += value.length;
      if (!paused && at > 20 * MiB) {
        paused = true;
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
    clearInterval(sampler);
    expect(at).toBe(big.size);
    expect(h.digest('hex')).toBe(big.sha256);
    console.log(
      `multi-host: API RSS ${(base / MiB).toFixed(0)} MiB before, peak ${(peak / MiB).toFixed(0)} MiB while serving 200 MiB`,
    );
    // Holding the file would add 200 MiB; a few streams' buffers and GC slack stay well under 64.
    expect(peak - base).toBeLessThan(64 * MiB);

    const part = await get(`/v1/runs/${id}/artifacts/big.bin`, { range: `bytes=${OFFSET}-${OFFSET + 99}` });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes ${OFFSET}-${OFFSET + 99}/${big.size}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(window)).toBe(true);
    const viaFile = await get(`/api/v1/file/${COLLECTION}/run/${id}/big.bin`, {
      range: `bytes=${OFFSET}-${OFFSET + 99}`,
    });
    expect(viaFile.status).toBe(206);
    expect(Buffer.from(await viaFile.arrayBuffer()).equals(window)).toBe(true);
    const tail = await get(`/v1/runs/${id}/artifacts/big.bin`, { range: 'bytes=-10' });
    expect(tail.status).toBe(206);
    expect(tail.headers.get('content-range')).toBe(`bytes ${big.size - 10}-${big.size - 1}/${big.size}`);
    const past = await get(`/v1/runs/${id}/artifacts/big.bin`, { range: `bytes=${big.size}-` });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${big.size}`);
    expect(((await past.json()) as { error: { code: string } }).error.code).toBe('range_not_satisfiable');
  }, 300_000);
});

describe('a conversation across hosts', () => {
  it('turn 2 runs on the other worker, its DATA_DIR apart, resumes the CLI session and reads the file turn 1 wrote', async () => {
    const token = randomBytes(6).toString('hex');
    const runbook = [
      '---',
      'agent: claude-code',
      '---',
      '# Notes',
      '```simulate',
      `- run: mkdir -p /app/results && echo ${token} | rev > /app/notes.txt && cp /app/notes.txt /app/results/notes.txt`,
      '- say: wrote the notes',
      '- await_user: the user asks what the notes say',
      '- run: cat /app/notes.txt',
      '- say: read the notes back',
      '```',
      '',
    ].join('\n');
    const t1 = await submit(runbook);
    const one = await ended(t1, 180_000);
    expect(one.status).toBe('completed');
    // Saved for the next turn just after the turn's end.
    const saved = await waitFor(
      async () => ((await record(t1)) as Rec & Record<string, unknown>).conversation_state,
      10_000,
      "turn 1's files to be saved",
    );
    expect(saved).toMatchObject({ dropped: 0 });
    const ranOne = (await events(t1)).find((e) => e.type === 'run.started')?.data.worker;
    const host1 = workers.findIndex((p) => p.owns(ranOne));
    expect(host1, `the worker of ${t1}`).toBeGreaterThanOrEqual(0);
    const first = workers[host1]!;
    const other = workers[1 - host1]!;
    expect(other.dataDir).not.toBe(first.dataDir);
    // What turn 1 kept for the next is in the store, nothing of it on its host.
    expect(await storedKeys(`runs/${t1}/conversation/`)).toContain(`runs/${t1}/conversation/manifest.json`);
    try {
      // Turn 1's host goes away (only the process this test started, by its pid): turn 2 can run
      // only on the other worker, which never saw turn 1.
      await stopProc(first);
      expect(first.child.exitCode ?? first.child.signalCode).not.toBeNull();
      expect(await filesUnder(path.join(first.dataDir, 'blobs'))).toEqual([]);

      // The follow-up as a client that keeps the conversation id sends it: only the new message.
      const res = await fetch(`${apiUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-conversation-id': t1, ...bearer(KEY) },
        body: JSON.stringify({
          model: 'claude-sonnet-4-6',
          stream: false,
          messages: [{ role: 'user', content: 'What do the notes say?' }],
        }),
      });
      const answer = (await res.json()) as {
        choices: Array<{ message: { content: string } }>;
        jetty_metadata: { trajectory_id: string; conversation_id: string; status: string };
      };
      expect(res.status, JSON.stringify(answer)).toBe(200);
      expect(answer.jetty_metadata).toMatchObject({ conversation_id: t1, status: 'completed' });
      expect(answer.choices[0]!.message.content).toContain('read the notes back');
      const t2 = answer.jetty_metadata.trajectory_id;
      expect(t2).not.toBe(t1);

      const two = (await (await get(`/v1/runs/${t2}`)).json()) as Rec & Record<string, unknown>;
      expect(two).toMatchObject({
        status: 'completed',
        turn: 2,
        parent_run_id: t1,
        conversation_id: t1,
        resumed: true,
      });
      const firstRun = (await record(t1)) as Rec & Record<string, unknown>;
      expect(firstRun.session_id).toEqual(expect.any(String));
      expect(two.session_id).toBe(firstRun.session_id);
      const evs = (await (await get(`/v1/runs/${t2}/trajectory`)).json()) as {
        events: Array<{ type: string; data: Record<string, unknown> }>;
      };
      const ranTwo = evs.events.find((e) => e.type === 'run.started')?.data.worker as string | undefined;
      expect(other.owns(ranTwo), `turn 2 ran on ${ranTwo}`).toBe(true);
      // The agent of turn 2, in a sandbox on the other host, read what turn 1 wrote in /app.
      const outputs = evs.events.filter((e) => e.type === 'tool.result').map((e) => String(e.data.output));
      // (Reversed: the runbook the CLI resends does not hold it.)
      expect(outputs.join('\n')).toContain([...token].reverse().join(''));
      expect(evs.events.filter((e) => e.type === 'run.warning')).toEqual([]);
    } finally {
      // The file's other tests have two workers again, whatever happened here.
      workers[host1] = await startWorker();
    }
  }, 300_000);
});

const manyFiles = [
  '# Many files and a big one',
  '```simulate',
  '- run: mkdir -p /app/results && for i in $(seq 1 40); do head -c 1048576 /dev/urandom > /app/results/part-$i.bin; done && head -c 157286400 /dev/urandom > /app/results/zz-big.bin',
  '- say: wrote them',
  '```',
  '',
].join('\n');

describe('the object store going away', () => {
  it('mid-upload: the attempt fails naming the store, nothing partial is listed, and the retry completes', async () => {
    const id = await submit(manyFiles);
    // The moment the first of the run's files is in the store, the store dies.
    await waitFor(
      async () => (await storedKeys(`runs/${id}/`)).some((k) => k.includes('/files-')),
      240_000,
      'the upload to begin',
    );
    await minio.stop('SIGKILL');
    const storeName = `s3://${bucket}/${PREFIX} at ${minio.endpoint}`;
    const failedAttempt = await waitFor(
      async () =>
        (await events(id)).find(
          (e) => e.type === 'log' && e.data.line?.includes('will retry') && e.data.line.includes(storeName),
        ),
      120_000,
      'the attempt to fail on the store',
    );
    expect(failedAttempt.data.line).toMatch(
      /The object store \(s3:\/\/.* at http:\/\/127\.0\.0\.1:\d+\) could not be written/,
    );
    // Nothing of the cut-short collection is an artifact, nor downloadable.
    expect((await record(id)).artifacts).toEqual([]);
    expect(((await (await get(`/v1/runs/${id}/artifacts`)).json()) as { data: unknown[] }).data).toEqual([]);
    expect((await get(`/v1/runs/${id}/artifacts/part-1.bin`)).status).toBe(404);

    await minio.start();
    const rec = await ended(id, 240_000);
    expect(rec.status).toBe('completed');
    expect(rec.artifacts).toHaveLength(41);
    const evs = await events(id);
    expect(evs.filter((e) => e.type === 'run.retry').map((e) => e.data.reason)).toEqual([
      'infrastructure_error',
    ]);
    for (const a of rec.artifacts.filter((x) => x.path === 'part-1.bin' || x.path === 'zz-big.bin')) {
      expect(await sha256Of(await get(`/v1/runs/${id}/artifacts/${a.path}`))).toBe(a.sha256);
    }
    // The first attempt's partial upload is still in the bucket (the store died before it could
    // be removed), but no manifest names it: the run serves only its second attempt's files.
    const prefixes = new Set(
      (await storedKeys(`runs/${id}/`)).filter((k) => k.includes('/files-')).map((k) => k.split('/')[2]),
    );
    expect(prefixes.size).toBe(2);
  }, 400_000);

  it('for good: the run fails with an error naming the store; its trajectory is stored once the store is back', async () => {
    const id = await submit(
      [
        '# Short',
        '```simulate',
        '- run: mkdir -p /app/results && echo x > /app/results/x.txt',
        '- sleep_ms: 1500',
        '- say: ok',
        '```',
        '',
      ].join('\n'),
    );
    await waitFor(
      async () => (await events(id)).some((e) => e.type === 'run.started'),
      120_000,
      'the run to start',
    );
    await minio.stop('SIGKILL');
    const rec = await ended(id, 240_000);
    expect(rec.status).toBe('failed');
    expect(rec.error?.code).toBe('object_store_unavailable');
    expect(rec.error?.message).toContain(`The object store (s3://${bucket}/${PREFIX} at ${minio.endpoint})`);
    expect(rec.error?.message).toContain('S3_ENDPOINT');
    expect(rec.artifacts).toEqual([]);
    const evs = await events(id);
    expect(evs.filter((e) => e.type === 'run.retry')).toHaveLength(2);
    expect(evs.at(-1)?.data.error?.code).toBe('object_store_unavailable');
    // Readable meanwhile (from Redis), and the API says what is down.
    const ready = (await (await fetch(`${apiUrl}/readyz`)).json()) as { checks: Record<string, boolean> };
    expect(ready.checks.blob_store).toBe(false);

    await minio.start();
    // A worker's sweep writes the trajectory the store could not take; then Redis may let it go.
    await waitFor(
      // MinIO answers 503 for a moment while it starts again: not there yet.
      async () => (await store.stat(`runs/${id}/trajectory.json`).catch(() => null)) !== null,
      60_000,
      'the trajectory in the store',
    );
    await expireFromRedis(id);
    const stored = (await (await get(`/v1/runs/${id}/trajectory`)).json()) as { events: Ev[]; run: Rec };
    expect(stored.run.status).toBe('failed');
    expect(stored.events.at(-1)?.type).toBe('run.failed');
  }, 400_000);
});

describe('what several hosts need', () => {
  it('a process with BLOB_STORE=s3 and no JETTY_MASTER_KEY refuses to start, naming it, and writes no key file', async () => {
    const { JETTY_MASTER_KEY: _k, ...noKey } = env;
    const dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-host-nokey-'));
    try {
      const child = spawn(process.execPath, [SERVER, '--role', 'worker'], {
        // A fresh key prefix: no key recorded yet, so a single machine would make one.
        env: {
          PATH: process.env.PATH ?? '',
          ...noKey,
          JETTY_KEY_PREFIX: `fresh-${randomBytes(3).toString('hex')}`,
          DATA_DIR: dataDir,
          WORKER_HTTP_PORT: '0',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const code = await new Promise((r) => child.once('exit', r));
      expect(code).toBe(2);
      expect(stderr).toMatch(/JETTY_MASTER_KEY is not set\. BLOB_STORE is an object store/);
      expect(existsSync(path.join(dataDir, 'master.key'))).toBe(false);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a bucket that does not exist stops the start with a message naming BLOB_STORE', async () => {
    await minio.start();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-host-nobucket-'));
    try {
      const child = spawn(process.execPath, [SERVER, '--role', 'api'], {
        env: {
          PATH: process.env.PATH ?? '',
          ...env,
          BLOB_STORE: 's3://no-such-bucket/x',
          DATA_DIR: dataDir,
          PORT: '0',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const code = await new Promise((r) => child.once('exit', r));
      expect(code).toBe(2);
      expect(stderr).toContain(
        `The object store (s3://no-such-bucket/x/ at ${minio.endpoint}) refused a request (HTTP 404)`,
      );
      expect(stderr).toContain('Check the bucket in BLOB_STORE exists');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
