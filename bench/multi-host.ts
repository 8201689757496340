// Throughput with API and workers as on several hosts: one API process and N worker processes,
// each with a DATA_DIR of its own, sharing only Redis and an object store (MinIO on loopback,
// built by scripts/minio.sh). Measures completed runs/min of examples/hello.md (the real claude
// CLI in real sandboxes, the simulated model) with 1 worker, then with 2.
//   npm run build && node dist/bench/multi-host.js
// Env: BENCH_RUNS (24 per phase), BENCH_CONCURRENCY (8 in flight), BENCH_WORKER_CONCURRENCY (2 per
// worker process). Needs redis-server, Docker with the jetty/runtime-claude-code image, and Go
// (for the first MinIO build). Writes the report to stdout and bench/RESULTS-multi-host.md.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SERVER = path.join(root, 'dist/src/main/server.js');

const cfg = z
  .object({
    BENCH_RUNS: z.coerce.number().int().min(1).default(24),
    BENCH_CONCURRENCY: z.coerce.number().int().min(1).default(8),
    BENCH_WORKER_CONCURRENCY: z.coerce.number().int().min(1).default(2),
  })
  .parse(process.env);

const children: ChildProcess[] = [];
const logs: string[] = [];
const dirs: string[] = [];
const progress = (s: string) => process.stderr.write(`multi-host: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function until(what: string, fn: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function start(cmd: string, args: string[], env: Record<string, string>, log: string): ChildProcess {
  const fd = openSync(log, 'a');
  logs.push(log);
  const child = spawn(cmd, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  children.push(child);
  return child;
}

async function stopAll(): Promise<void> {
  await Promise.all(
    children.splice(0).map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await gone;
    }),
  );
}

/** Redis, MinIO with a bucket, the API: what every phase shares. Answers the servers' env. */
async function shared(work: string) {
  const redisPort = await freePort();
  start(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', ''],
    {},
    `${work}/redis.log`,
  );
  const minio = execFileSync('bash', [path.join(root, 'scripts/minio.sh')], { encoding: 'utf8' }).trim();
  const s3Port = await freePort();
  const user = 'bench';
  const secret = randomBytes(16).toString('hex');
  start(
    minio,
    [
      'server',
      `${work}/minio`,
      '--address',
      `127.0.0.1:${s3Port}`,
      '--console-address',
      `127.0.0.1:${await freePort()}`,
    ],
    { HOME: work, MINIO_ROOT_USER: user, MINIO_ROOT_PASSWORD: secret, MINIO_BROWSER: 'off' },
    `${work}/minio.log`,
  );
  const endpoint = `http://127.0.0.1:${s3Port}`;
  await until('MinIO', async () => (await fetch(`${endpoint}/minio/health/live`)).ok);
  const s3 = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: user, secretAccessKey: secret },
  });
  await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
  s3.destroy();
  return {
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    JETTY_KEY_PREFIX: `bench-${randomBytes(3).toString('hex')}`,
    JETTY_MASTER_KEY: randomBytes(32).toString('base64'),
    BLOB_STORE: 's3://bench/runs',
    S3_ENDPOINT: endpoint,
    S3_ACCESS_KEY_ID: user,
    S3_SECRET_ACCESS_KEY: secret,
    LOG_LEVEL: 'warn',
  };
}

async function server(
  role: 'api' | 'worker',
  env: Record<string, string>,
  extra: Record<string, string>,
  work: string,
) {
  const dataDir = await mkdtemp(path.join(work, `${role}-`));
  start(
    process.execPath,
    [SERVER, '--role', role],
    { ...env, DATA_DIR: dataDir, ...extra },
    `${dataDir}.log`,
  );
}

/** One run of the runbook, waited for; answers whether it completed. */
async function runOnce(url: string, key: string, runbook: string): Promise<boolean> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({
      model: 'claude-sonnet-4-6',
      stream: false,
      messages: [
        { role: 'system', content: runbook },
        { role: 'user', content: 'Execute the runbook.' },
      ],
      jetty: { runbook: true, model_provider: 'simulated', timeout_hint: 300 },
    }),
  });
  const body = (await res.json()) as { jetty_metadata?: { status?: string } };
  return res.status === 200 && body.jetty_metadata?.status === 'completed';
}

async function phase(url: string, key: string, runbook: string): Promise<{ ok: number; seconds: number }> {
  let next = 0;
  let ok = 0;
  const t0 = Date.now();
  const lane = async () => {
    while (next < cfg.BENCH_RUNS) {
      next++;
      if (await runOnce(url, key, runbook)) ok++;
    }
  };
  await Promise.all(Array.from({ length: cfg.BENCH_CONCURRENCY }, lane));
  return { ok, seconds: (Date.now() - t0) / 1000 };
}

async function measure(workers: number, runbook: string): Promise<{ ok: number; seconds: number }> {
  const work = await mkdtemp(path.join(tmpdir(), 'jetty-bench-hosts-'));
  dirs.push(work);
  try {
    const env = await shared(work);
    const key = `jrk_${randomBytes(32).toString('base64url')}`;
    const port = await freePort();
    await server(
      'api',
      env,
      { PORT: String(port), JETTY_BOOTSTRAP_COLLECTION: 'bench', JETTY_BOOTSTRAP_API_KEY: key },
      work,
    );
    const url = `http://127.0.0.1:${port}`;
    await until('the API', async () => (await fetch(`${url}/readyz`)).ok);
    for (let i = 0; i < workers; i++) {
      const http = await freePort();
      await server(
        'worker',
        env,
        { WORKER_HTTP_PORT: String(http), WORKER_CONCURRENCY: String(cfg.BENCH_WORKER_CONCURRENCY) },
        work,
      );
      await until('a worker', async () => (await fetch(`http://127.0.0.1:${http}/readyz`)).ok);
    }
    progress(`${workers} worker(s): warm-up run`);
    await runOnce(url, key, runbook);
    progress(`${workers} worker(s): ${cfg.BENCH_RUNS} runs, ${cfg.BENCH_CONCURRENCY} in flight`);
    return await phase(url, key, runbook);
  } finally {
    await stopAll();
  }
}

async function main(): Promise<void> {
  const runbook = await readFile(path.join(root, 'examples/hello.md'), 'utf8');
  const rows: string[] = [];
  for (const n of [1, 2]) {
    const r = await measure(n, runbook);
    const perMin = (r.ok / r.seconds) * 60;
    progress(
      `${n} worker(s): ${r.ok}/${cfg.BENCH_RUNS} completed in ${r.seconds.toFixed(1)} s: ${perMin.toFixed(1)} runs/min`,
    );
    rows.push(
      `| ${n} | ${n * cfg.BENCH_WORKER_CONCURRENCY} | ${r.ok}/${cfg.BENCH_RUNS} | ${r.seconds.toFixed(1)} s | ${perMin.toFixed(1)} |`,
    );
  }
  const report = [
    '# Several hosts: throughput against one object store',
    '',
    `${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}). One API and N worker`,
    'processes, each with its own DATA_DIR, sharing Redis and one MinIO bucket; examples/hello.md on the',
    `claude-code runtime with the simulated model; ${cfg.BENCH_RUNS} runs per row, ${cfg.BENCH_CONCURRENCY} in flight.`,
    '',
    '| worker processes | run slots | completed | wall | runs/min |',
    '|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
  process.stdout.write(report);
  await writeFile(path.join(root, 'bench/RESULTS-multi-host.md'), report);
}

main()
  .catch(async (err) => {
    await stopAll();
    // What the servers said is the reason a phase could not start or finish.
    for (const log of logs) {
      const text = await readFile(log, 'utf8').catch(() => '');
      console.error(`--- ${log}\n${text.split('\n').slice(-15).join('\n')}`);
    }
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
