import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/main.js';
import { loadMasterKey, masterKeyCheckKey } from '../../src/tenancy/master-key-file.js';
import { TenancyStore } from '../../src/tenancy/store.js';
import { startRedis, type TestRedis } from '../support/redis.js';

// Needs the build (npm run build): the old form runs dist/src/main/cli.js through npm.
// The bootstrap commands moved under `jetty admin`, and the words `npm run jetty -- ...` always
// took still work: both write the real Redis the server reads.
const ROOT = path.resolve(import.meta.dirname, '../..');
let redis: TestRedis;
let dataDir: string;
let env: Record<string, string>;

beforeAll(async () => {
  redis = await startRedis();
  dataDir = await mkdtemp(path.join(tmpdir(), 'jetty-admin-'));
  env = {
    REDIS_URL: redis.url,
    DATA_DIR: dataDir,
    JETTY_KEY_PREFIX: `admin-${randomBytes(3).toString('hex')}`,
  };
});

afterAll(async () => {
  await redis?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function cli(argv: string[], input?: string) {
  let out = '';
  let err = '';
  const stdin = new PassThrough();
  stdin.end(input ?? '');
  const code = await runCli(argv, {
    env,
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    stdin,
    cwd: ROOT,
    signals: process,
  });
  return { code, out, err };
}

describe('jetty admin', () => {
  it('npm run jetty -- collections create (the old form) makes a collection whose key the server accepts', async () => {
    const { stdout } = await promisify(execFile)(
      'npm',
      ['run', '-s', 'jetty', '--', 'collections', 'create', 'acme'],
      {
        cwd: ROOT,
        env: { ...process.env, ...env },
      },
    );
    const key = stdout.trim().split('\n').at(-1)!;
    expect(key).toMatch(/^jrk_/);
    const conn = new Redis(redis.url);
    try {
      const store = new TenancyStore(
        conn,
        env.JETTY_KEY_PREFIX!,
        (
          await loadMasterKey(undefined, dataDir, {
            redis: conn,
            key: masterKeyCheckKey(env.JETTY_KEY_PREFIX!),
          })
        ).key,
      );
      expect(await store.lookupApiKey(key)).toMatchObject({ collection: 'acme' });
    } finally {
      conn.disconnect();
    }
  });

  it('the same commands under `jetty admin`: keys, env (value from stdin, never printed)', async () => {
    const made = await cli(['admin', 'keys', 'create', 'acme', '--name', 'ci']);
    expect(made.code).toBe(0);
    expect(made.out.trim()).toMatch(/^jrk_/);
    const keys = await cli(['admin', 'keys', 'list', 'acme']);
    expect(keys.out).toMatch(/\tci\t/);
    expect(keys.out).not.toContain(made.out.trim());
    expect((await cli(['admin', 'env', 'set', 'acme', 'TOKEN'], 's3cret\n')).out).toBe('TOKEN set in acme\n');
    const listed = await cli(['env', 'list', 'acme']);
    expect(listed.out).toMatch(/^TOKEN\tset /);
    expect(listed.out).not.toContain('s3cret');
  });

  it('a mistake is a usage error (exit 2); an existing name is refused (exit 4); no Redis is exit 5', async () => {
    expect((await cli(['admin', 'keys', 'create'])).code).toBe(2);
    const dup = await cli(['admin', 'collections', 'create', 'acme']);
    expect(dup.code).toBe(4);
    expect(dup.err).toMatch(/acme/);
    const saved = env;
    env = { ...env, REDIS_URL: 'redis://127.0.0.1:1' };
    try {
      const down = await cli(['admin', 'collections', 'list']);
      expect(down.code).toBe(5);
      expect(down.err).toContain('REDIS_URL');
    } finally {
      env = saved;
    }
  });
});
