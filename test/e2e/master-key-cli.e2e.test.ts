import { spawn } from 'node:child_process';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../support/redis.js';

// `npm run jetty -- env set` as an operator runs it (the built CLI, a real Redis): run from a
// directory without the server's DATA_DIR, it must refuse rather than make a new master.key and
// encrypt a value the server can never read.
const CLI = path.resolve(import.meta.dirname, '../../dist/src/main/cli.js');
const PREFIX = 'mkcli';

let redis: TestRedis;
let serverDir: string;
let elsewhere: string;

beforeAll(async () => {
  redis = await startRedis();
  serverDir = await mkdtemp(path.join(tmpdir(), 'jetty-mk-server-'));
  elsewhere = await mkdtemp(path.join(tmpdir(), 'jetty-mk-elsewhere-'));
});
afterAll(async () => {
  await redis?.stop();
  await rm(serverDir, { recursive: true, force: true });
  await rm(elsewhere, { recursive: true, force: true });
});

function jetty(args: string[], env: Record<string, string>, stdin = '') {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', REDIS_URL: redis.url, JETTY_KEY_PREFIX: PREFIX, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => (stdout += c));
    p.stderr.on('data', (c) => (stderr += c));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(stdin);
  });
}

describe('the CLI and the master key', () => {
  it('refuses `env set` from a directory without the server key, writing nothing and making no key file', async () => {
    const made = await jetty(['bootstrap', 'acme'], { DATA_DIR: serverDir });
    expect(made.code, made.stderr).toBe(0);

    // Exit 2: a configuration the operator must fix, nothing written (docs/cli.md, exit codes).
    const wrong = await jetty(['env', 'set', 'acme', 'API_TOKEN'], { DATA_DIR: elsewhere }, 'value-1');
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('JETTY_MASTER_KEY');
    expect(wrong.stderr).toContain('DATA_DIR');
    expect(wrong.stderr).not.toContain('    at ');
    await expect(access(path.join(elsewhere, 'master.key'))).rejects.toThrow();

    const conn = new Redis(redis.url);
    try {
      expect(await conn.hkeys(`${PREFIX}:collection:acme:env`)).toEqual([]);
    } finally {
      conn.disconnect();
    }
  });

  it('refuses another JETTY_MASTER_KEY, and takes the server key given either way', async () => {
    const other = await jetty(['master-key'], {});
    const wrong = await jetty(
      ['env', 'set', 'acme', 'API_TOKEN'],
      { JETTY_MASTER_KEY: other.stdout.trim() },
      'v',
    );
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/the master key from JETTY_MASTER_KEY is not the one/);

    const key = (await readFile(path.join(serverDir, 'master.key'), 'utf8')).trim();
    const byEnv = await jetty(['env', 'set', 'acme', 'API_TOKEN'], { JETTY_MASTER_KEY: key }, 'v');
    expect(byEnv.code, byEnv.stderr).toBe(0);
    const byDir = await jetty(['env', 'list', 'acme'], { DATA_DIR: serverDir });
    expect(byDir.code, byDir.stderr).toBe(0);
    expect(byDir.stdout).toMatch(/^API_TOKEN\t/);
  });
});
