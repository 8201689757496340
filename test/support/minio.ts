import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './redis.js';

/**
 * A private MinIO server (a real S3 implementation) for one test file, on a free loopback port,
 * its data in a temporary directory. The binary comes from scripts/minio.sh (built from MinIO's Go
 * module and cached by version; scripts/setup.sh --test builds it), or MINIO_BIN.
 */
export interface TestMinio {
  endpoint: string;
  port: number;
  accessKeyId: string;
  secretAccessKey: string;
  /** Makes a bucket (a fresh name each time unless given); answers its name. */
  bucket(name?: string): Promise<string>;
  /** Environment for a server process using `s3://<bucket>/<prefix>`. */
  env(bucket: string, prefix?: string): Record<string, string>;
  /** Stops the server (SIGKILL: it dies mid-request); its data stays, so start() brings it back. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and data (nothing when it runs). */
  start(): Promise<void>;
  /** Stops it and removes its data. */
  destroy(): Promise<void>;
}

let binary: string | undefined;

export function minioBinary(): string {
  if (process.env.MINIO_BIN) return process.env.MINIO_BIN;
  binary ??= execFileSync('bash', [path.resolve('scripts/minio.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 15 * 60_000,
  }).trim();
  return binary;
}

export async function startMinio(): Promise<TestMinio> {
  const bin = minioBinary();
  const dir = await mkdtemp(path.join(tmpdir(), 'jetty-minio-'));
  const port = await freePort();
  const accessKeyId = `test${randomBytes(4).toString('hex')}`;
  const secretAccessKey = randomBytes(16).toString('hex');
  const endpoint = `http://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  let stderr = '';

  const start = async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) return;
    const consolePort = await freePort();
    stderr = '';
    const p = spawn(
      bin,
      [
        'server',
        dir,
        '--address',
        `127.0.0.1:${port}`,
        '--console-address',
        `127.0.0.1:${consolePort}`,
        '--quiet',
      ],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: dir,
          MINIO_ROOT_USER: accessKeyId,
          MINIO_ROOT_PASSWORD: secretAccessKey,
          MINIO_BROWSER: 'off',
          MINIO_UPDATE: 'off',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    p.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    proc = p;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`minio exited (${p.exitCode}): ${stderr}`);
      const ok = await fetch(`${endpoint}/minio/health/live`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`minio did not answer on port ${port}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill(signal);
    await exited;
  };

  await start();
  return {
    endpoint,
    port,
    accessKeyId,
    secretAccessKey,
    async bucket(name = `t-${randomBytes(6).toString('hex')}`) {
      const client = new S3Client({
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId, secretAccessKey },
      });
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
      return name;
    },
    env(bucket, prefix = '') {
      return {
        BLOB_STORE: `s3://${bucket}/${prefix}`,
        S3_ENDPOINT: endpoint,
        S3_REGION: 'us-east-1',
        S3_ACCESS_KEY_ID: accessKeyId,
        S3_SECRET_ACCESS_KEY: secretAccessKey,
      };
    },
    stop,
    start,
    async destroy() {
      await stop('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
