import { randomBytes } from 'node:crypto';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { startServer } from '../../src/main/compose.js';
import { loadMasterKey, masterKeyCheckKey } from '../../src/tenancy/master-key-file.js';
import { generateMasterKey, MasterKeyError } from '../../src/tenancy/secrets.js';
import { startRedis, type TestRedis } from '../support/redis.js';

// Every process that encrypts or decrypts collection secrets must hold the same master key. The
// first one records a check value in Redis; a process with another key refuses to start.
let server: TestRedis;
let redis: Redis;
const dirs: string[] = [];
let seq = 0;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function dataDir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'jetty-mk-'));
  dirs.push(d);
  return d;
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

describe('the master key check in Redis', () => {
  it('is recorded at first use, and is not the key', async () => {
    const check = { redis, key: masterKeyCheckKey(`mk-${++seq}`) };
    const key = generateMasterKey();
    await loadMasterKey(key, await dataDir(), check);
    const recorded = await redis.get(check.key);
    expect(recorded).toMatch(/^v1:[0-9a-f]{64}$/);
    expect(recorded).not.toContain(key);
    expect(recorded).not.toContain(Buffer.from(key, 'base64').toString('hex'));
    // The same key again: accepted.
    await expect(loadMasterKey(key, await dataDir(), check)).resolves.toMatchObject({ source: 'env' });
  });

  it('refuses another JETTY_MASTER_KEY, naming the variable and DATA_DIR', async () => {
    const check = { redis, key: masterKeyCheckKey(`mk-${++seq}`) };
    await loadMasterKey(generateMasterKey(), await dataDir(), check);
    const err = await loadMasterKey(generateMasterKey(), await dataDir(), check).catch((e) => e);
    expect(err).toBeInstanceOf(MasterKeyError);
    expect(err.message).toMatch(/^the master key from JETTY_MASTER_KEY is not the one this Redis's secrets/);
    expect(err.message).toContain('DATA_DIR');
  });

  it('makes no new master.key in a DATA_DIR without one once Redis has a check value', async () => {
    const check = { redis, key: masterKeyCheckKey(`mk-${++seq}`) };
    const serverDir = await dataDir();
    const first = await loadMasterKey(undefined, serverDir, check);
    expect(first.source).toBe('new-file');

    const elsewhere = await dataDir();
    const err = await loadMasterKey(undefined, elsewhere, check).catch((e) => e);
    expect(err).toBeInstanceOf(MasterKeyError);
    expect(err.message).toContain('JETTY_MASTER_KEY is not set and DATA_DIR');
    expect(await exists(path.join(elsewhere, 'master.key'))).toBe(false);

    // The server's key, given either way, is accepted.
    const text = (await readFile(path.join(serverDir, 'master.key'), 'utf8')).trim();
    await expect(loadMasterKey(text, elsewhere, check)).resolves.toMatchObject({ source: 'env' });
    await expect(loadMasterKey(undefined, serverDir, check)).resolves.toMatchObject({ source: 'file' });
  });

  it('refuses a master.key file that differs, naming the file', async () => {
    const check = { redis, key: masterKeyCheckKey(`mk-${++seq}`) };
    await loadMasterKey(generateMasterKey(), await dataDir(), check);
    const dir = await dataDir();
    const err = await loadMasterKey(undefined, dir, check).catch((e) => e);
    // A fresh DATA_DIR: refused before any file is made.
    expect(err).toBeInstanceOf(MasterKeyError);
    expect(await exists(path.join(dir, 'master.key'))).toBe(false);
  });

  it('two processes starting together on a fresh Redis with their own DATA_DIR: one key wins, the other is refused and leaves no file', async () => {
    const check = { redis, key: masterKeyCheckKey(`mk-${++seq}`) };
    const [a, b] = [await dataDir(), await dataDir()];
    const results = await Promise.allSettled([
      loadMasterKey(undefined, a, check),
      loadMasterKey(undefined, b, check),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const loser = results[0]!.status === 'rejected' ? a : b;
    expect(await exists(path.join(loser, 'master.key'))).toBe(false);
  });

  it('a server started with another key refuses to start, and says how to fix it', async () => {
    const prefix = `mk-${++seq}`;
    const env = (key: string) =>
      loadConfig({
        REDIS_URL: server.url,
        JETTY_KEY_PREFIX: prefix,
        DATA_DIR: '/nonexistent-unused',
        JETTY_MASTER_KEY: key,
        LOG_LEVEL: 'silent',
        PORT: '0',
      });
    const logger = pino({ level: 'silent' });
    const first = await startServer(env(randomBytes(32).toString('base64')), { role: 'api', logger });
    await first.close();
    const err = await startServer(env(randomBytes(32).toString('base64')), { role: 'api', logger }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(MasterKeyError);
    expect(err.message).toMatch(/JETTY_MASTER_KEY.*DATA_DIR/s);
  });
});
