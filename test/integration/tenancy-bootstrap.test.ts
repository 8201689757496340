import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { generateApiKey } from '../../src/tenancy/api-keys.js';
import { ensureBootstrap } from '../../src/tenancy/bootstrap.js';
import { MasterKey } from '../../src/tenancy/secrets.js';
import { TenancyStore } from '../../src/tenancy/store.js';
import { startRedis, type TestRedis } from '../support/redis.js';

// A fresh install on a real redis-server: each test is its own install (its own key prefix).
let server: TestRedis;
let redis: Redis;
const MASTER = new MasterKey(randomBytes(32));
let seq = 0;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
});
afterAll(async () => {
  await redis?.quit();
  await server?.stop();
});

const freshStore = () => new TenancyStore(redis, `bootstrap-test-${++seq}`, MASTER);

async function rejected(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected a rejection');
}

describe('bootstrap without a given key', () => {
  it('makes the collection and a key the first time, shows the key once, and nothing after', async () => {
    const store = freshStore();
    const first = await ensureBootstrap(store, { collection: 'default', description: 'first collection' });
    expect(first).toMatchObject({
      createdCollection: true,
      createdApiKey: true,
      apiKeyOutcome: 'generated',
      collection: { name: 'default', description: 'first collection' },
    });
    expect(first.generatedKey).toMatch(/^jrk_/);
    expect(first.apiKey).toMatchObject({ collection: 'default', name: 'bootstrap' });
    expect(JSON.stringify(first.apiKey)).not.toContain(first.generatedKey);
    expect(await store.lookupApiKey(first.generatedKey!)).toMatchObject({ collection: 'default' });

    const second = await ensureBootstrap(store, { collection: 'default' });
    expect(second).toEqual({
      collection: first.collection,
      createdCollection: false,
      createdApiKey: false,
      apiKeyOutcome: 'collection-has-keys',
      apiKey: null,
      generatedKey: null,
    });
    expect(await store.listApiKeys('default')).toHaveLength(1);
  });

  it('makes a key for a collection that exists without one (a start that stopped half-way)', async () => {
    const store = freshStore();
    await store.createCollection({ name: 'default' });
    const r = await ensureBootstrap(store, { collection: 'default' });
    expect(r).toMatchObject({ createdCollection: false, createdApiKey: true, apiKeyOutcome: 'generated' });
  });

  it('makes one collection and one key when several processes start at once', async () => {
    const store = freshStore();
    const results = await Promise.all(
      Array.from({ length: 5 }, () => ensureBootstrap(store, { collection: 'default' })),
    );
    expect(results.filter((r) => r.createdCollection)).toHaveLength(1);
    expect(results.filter((r) => r.createdApiKey)).toHaveLength(1);
    expect(await store.listCollections()).toHaveLength(1);
    expect(await store.listApiKeys('default')).toHaveLength(1);
  });
});

describe('bootstrap with a given key', () => {
  it('registers it once, then reports it as already registered', async () => {
    const store = freshStore();
    const key = generateApiKey();
    const first = await ensureBootstrap(store, { collection: 'ops', apiKey: key });
    expect(first).toMatchObject({
      createdCollection: true,
      createdApiKey: true,
      apiKeyOutcome: 'registered',
    });
    expect(first.generatedKey).toBeNull();
    expect(first.apiKey?.prefix).toBe(key.slice(0, 8));
    const again = await ensureBootstrap(store, { collection: 'ops', apiKey: key });
    expect(again).toMatchObject({
      createdCollection: false,
      createdApiKey: false,
      apiKeyOutcome: 'already-registered',
      apiKey: first.apiKey,
    });
    expect(await store.lookupApiKey(key)).toMatchObject({ collection: 'ops' });
    expect(await store.listApiKeys('ops')).toHaveLength(1);
  });

  it('adds it to a collection that already has other keys', async () => {
    const store = freshStore();
    await ensureBootstrap(store, { collection: 'ops' });
    const key = generateApiKey();
    const r = await ensureBootstrap(store, { collection: 'ops', apiKey: key });
    expect(r.apiKeyOutcome).toBe('registered');
    expect(await store.listApiKeys('ops')).toHaveLength(2);
  });

  it('does not bring back a key revoked since, and says so', async () => {
    const store = freshStore();
    const key = generateApiKey();
    const first = await ensureBootstrap(store, { collection: 'ops', apiKey: key });
    await store.revokeApiKey('ops', first.apiKey!.id);
    const r = await ensureBootstrap(store, { collection: 'ops', apiKey: key });
    expect(r).toMatchObject({ createdApiKey: false, apiKeyOutcome: 'revoked', apiKey: null });
    expect(await store.lookupApiKey(key)).toBeNull();
  });

  it('refuses a key of another collection or of the wrong form, on the apiKey field', async () => {
    const store = freshStore();
    const key = generateApiKey();
    await ensureBootstrap(store, { collection: 'ops', apiKey: key });
    const taken = await rejected(ensureBootstrap(store, { collection: 'other', apiKey: key }));
    expect(taken.status).toBe(409);
    expect(taken.param).toBe('apiKey');
    const malformed = await rejected(ensureBootstrap(store, { collection: 'ops', apiKey: 'changeme' }));
    expect(malformed.status).toBe(400);
    expect(malformed.param).toBe('apiKey');
    expect(malformed.message).not.toContain('changeme');
  });

  it('refuses a collection name that breaks the rule, on the collection field, writing nothing', async () => {
    const store = freshStore();
    const err = await rejected(ensureBootstrap(store, { collection: 'my collection' }));
    expect(err.status).toBe(400);
    expect(err.param).toBe('collection');
    expect(err.message).toMatch(/3–48 characters/);
    expect(await store.listCollections()).toEqual([]);
  });
});
