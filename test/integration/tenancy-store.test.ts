import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { generateApiKey, hashApiKey } from '../../src/tenancy/api-keys.js';
import { MasterKey } from '../../src/tenancy/secrets.js';
import { MAX_VARIABLES, REDACTED_VALUE, TenancyStore } from '../../src/tenancy/store.js';
import { startRedis, type TestRedis } from '../support/redis.js';

// A real redis-server for this file; each test works under its own key prefix.
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

function freshStore(opts: { now?: () => Date; master?: MasterKey; prefix?: string } = {}) {
  const prefix = opts.prefix ?? `tenancy-test-${++seq}`;
  return { prefix, store: new TenancyStore(redis, prefix, opts.master ?? MASTER, { now: opts.now }) };
}

async function rejected(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected a rejection');
}

/** Every key under the prefix with everything it holds, as one text to search. */
async function dump(prefix: string): Promise<{ keys: string[]; text: string }> {
  const keys = (await redis.keys(`${prefix}:*`)).sort();
  const parts: string[] = [];
  for (const key of keys) {
    const type = await redis.type(key);
    let value: unknown;
    if (type === 'string') value = await redis.get(key);
    else if (type === 'hash') value = await redis.hgetall(key);
    else if (type === 'set') value = await redis.smembers(key);
    else if (type === 'zset') value = await redis.zrange(key, 0, -1, 'WITHSCORES');
    else value = type;
    parts.push(`${key} ${JSON.stringify(value)}`);
  }
  return { keys, text: parts.join('\n') };
}

describe('collections', () => {
  it('are created with a description, read back, listed by name; a second create is a 409', async () => {
    const { store } = freshStore({ now: () => new Date('2026-01-02T03:04:05.000Z') });
    const made = await store.createCollection({ name: 'zeta-team', description: 'the Z team' });
    expect(made).toEqual({
      name: 'zeta-team',
      description: 'the Z team',
      created_at: '2026-01-02T03:04:05.000Z',
    });
    await store.createCollection({ name: 'acme' });
    expect(await store.getCollection('zeta-team')).toEqual(made);
    expect((await store.listCollections()).map((c) => c.name)).toEqual(['acme', 'zeta-team']);
    expect((await store.getCollection('acme')).description).toBe('');

    const dup = await rejected(store.createCollection({ name: 'acme', description: 'again' }));
    expect(dup.status).toBe(409);
    expect(dup.code).toBe('collection_exists');
    expect(dup.param).toBe('name');
    expect(dup.message).toMatch(/"acme" already exists/);
    expect((await store.getCollection('acme')).description).toBe('');
  });

  it('refuses a bad name or description with a 400 on that field, writing nothing', async () => {
    const { store, prefix } = freshStore();
    const bad = await rejected(store.createCollection({ name: 'a b' }));
    expect(bad.status).toBe(400);
    expect(bad.param).toBe('name');
    expect(bad.message).toMatch(/3–48 characters/);
    const desc = await rejected(store.createCollection({ name: 'acme', description: 7 }));
    expect(desc.param).toBe('description');
    const long = await rejected(store.createCollection({ name: 'acme', description: 'x'.repeat(1001) }));
    expect(long.param).toBe('description');
    expect((await dump(prefix)).keys).toEqual([]);
  });

  it('answers 404 for an unknown name, and for a name no collection could have', async () => {
    const { store } = freshStore();
    for (const name of ['nobody', 'x', '../etc', 'a:b']) {
      const err = await rejected(store.getCollection(name));
      expect(err.status).toBe(404);
      expect(err.code).toBe('collection_not_found');
      expect(await store.findCollection(name)).toBeNull();
    }
  });

  it('has no environment or keys methods that work on a collection that does not exist', async () => {
    const { store, prefix } = freshStore();
    const calls = [
      store.getEnvironment('ghost', { reveal: false }),
      store.patchEnvironment('ghost', { A: 'b' }),
      store.resolveEnvironment('ghost', ['A']),
      store.checkSecrets('ghost', ['A']),
      store.createApiKey('ghost'),
      store.listApiKeys('ghost'),
      store.revokeApiKey('ghost', 'key_x'),
    ];
    for (const call of calls) expect((await rejected(call)).status).toBe(404);
    expect((await dump(prefix)).keys).toEqual([]);
  });
});

describe('API keys', () => {
  it('are shown once when made, open their collection, and are stored only as a hash', async () => {
    const { store, prefix } = freshStore();
    await store.createCollection({ name: 'acme' });
    const made = await store.createApiKey('acme', { name: 'ci' });
    expect(made.key).toMatch(/^jrk_[A-Za-z0-9_-]{43}$/);
    expect(made).toMatchObject({
      collection: 'acme',
      name: 'ci',
      prefix: made.key.slice(0, 8),
      last_used_at: null,
    });
    expect(made.id).toMatch(/^key_/);

    expect(await store.lookupApiKey(made.key)).toEqual({ keyId: made.id, collection: 'acme' });

    const raw = await dump(prefix);
    expect(raw.text).not.toContain(made.key);
    expect(raw.text).not.toContain(made.key.slice(8));
    expect(raw.text).toContain(hashApiKey(made.key));
  });

  it('are listed newest first with prefix, name and times, never the key or its hash', async () => {
    let clock = Date.parse('2026-03-01T00:00:00Z');
    const { store } = freshStore({ now: () => new Date(clock) });
    await store.createCollection({ name: 'acme' });
    const first = await store.createApiKey('acme', { name: 'laptop' });
    clock += 1000;
    const second = await store.createApiKey('acme');
    const list = await store.listApiKeys('acme');
    expect(list.map((k) => k.id)).toEqual([second.id, first.id]);
    expect(list[1]).toEqual({
      id: first.id,
      collection: 'acme',
      name: 'laptop',
      prefix: first.key.slice(0, 8),
      created_at: '2026-03-01T00:00:00.000Z',
      last_used_at: null,
    });
    const text = JSON.stringify(list);
    for (const k of [first, second]) {
      expect(text).not.toContain(k.key);
      expect(text).not.toContain(hashApiKey(k.key));
    }
  });

  it('record when they were last used, at most once a minute', async () => {
    let clock = Date.parse('2026-03-01T00:00:00Z');
    const { store } = freshStore({ now: () => new Date(clock) });
    await store.createCollection({ name: 'acme' });
    const k = await store.createApiKey('acme');
    clock += 5000;
    await store.lookupApiKey(k.key);
    expect((await store.listApiKeys('acme'))[0]!.last_used_at).toBe('2026-03-01T00:00:05.000Z');
    clock += 30_000;
    await store.lookupApiKey(k.key);
    expect((await store.listApiKeys('acme'))[0]!.last_used_at).toBe('2026-03-01T00:00:05.000Z');
    clock += 31_000;
    await store.lookupApiKey(k.key);
    expect((await store.listApiKeys('acme'))[0]!.last_used_at).toBe('2026-03-01T00:01:06.000Z');
  });

  it('stop working at once when revoked, and leave nothing to find them by', async () => {
    const { store, prefix } = freshStore();
    await store.createCollection({ name: 'acme' });
    const keep = await store.createApiKey('acme');
    const gone = await store.createApiKey('acme');
    await store.revokeApiKey('acme', gone.id);
    expect(await store.lookupApiKey(gone.key)).toBeNull();
    expect(await store.lookupApiKey(keep.key)).not.toBeNull();
    expect((await store.listApiKeys('acme')).map((k) => k.id)).toEqual([keep.id]);
    const raw = await dump(prefix);
    expect(raw.keys.some((k) => k.includes(gone.id))).toBe(false);
    expect(raw.text).not.toContain(gone.key);

    const again = await rejected(store.revokeApiKey('acme', gone.id));
    expect(again.status).toBe(404);
    expect(again.code).toBe('api_key_not_found');
    expect((await rejected(store.revokeApiKey('acme', 'key_nonexistent'))).status).toBe(404);
  });

  it('refuse a malformed, unknown or near-miss key without saying which', async () => {
    const { store } = freshStore();
    await store.createCollection({ name: 'acme' });
    const k = await store.createApiKey('acme');
    const last = k.key.at(-1) === 'A' ? 'B' : 'A';
    for (const attempt of [
      '',
      'jrk_',
      'Bearer x',
      k.key.slice(0, -1),
      `${k.key.slice(0, -1)}${last}`,
      `${k.key} `,
    ]) {
      expect(await store.lookupApiKey(attempt), attempt).toBeNull();
    }
  });

  it('can be registered from outside (bootstrap): idempotent, one collection each, never once revoked', async () => {
    const { store } = freshStore();
    await store.createCollection({ name: 'acme' });
    await store.createCollection({ name: 'globex' });
    const given = generateApiKey();
    const first = await store.registerApiKey('acme', given, { name: 'ops' });
    if (first.status !== 'created') throw new Error(`expected created, got ${first.status}`);
    expect(first.key).toMatchObject({ collection: 'acme', name: 'ops', prefix: given.slice(0, 8) });
    expect(await store.registerApiKey('acme', given)).toEqual({ status: 'exists', key: first.key });
    expect(await store.lookupApiKey(given)).toMatchObject({ collection: 'acme' });

    const taken = await rejected(store.registerApiKey('globex', given, { param: 'apiKey' }));
    expect(taken.status).toBe(409);
    expect(taken.param).toBe('apiKey');
    expect(taken.message).not.toContain(given);

    const malformed = await rejected(store.registerApiKey('acme', 'hunter2', { param: 'apiKey' }));
    expect(malformed.status).toBe(400);
    expect(malformed.param).toBe('apiKey');
    expect(malformed.message).toMatch(/"jrk_" followed by 43 base64url characters/);

    await store.revokeApiKey('acme', (await store.lookupApiKey(given))!.keyId);
    expect(await store.registerApiKey('acme', given)).toEqual({ status: 'revoked' });
    expect(await store.registerApiKey('globex', given)).toEqual({ status: 'revoked' });
    expect(await store.lookupApiKey(given)).toBeNull();
  });

  it('make a first key only for a collection that has none', async () => {
    const { store } = freshStore();
    await store.createCollection({ name: 'acme' });
    const made = await Promise.all([1, 2, 3, 4].map(() => store.createFirstApiKey('acme')));
    expect(made.filter((k) => k !== null)).toHaveLength(1);
    expect(await store.listApiKeys('acme')).toHaveLength(1);
  });

  it('check a key name', async () => {
    const { store } = freshStore();
    await store.createCollection({ name: 'acme' });
    expect((await rejected(store.createApiKey('acme', { name: 5 }))).param).toBe('name');
    expect((await rejected(store.createApiKey('acme', { name: 'n'.repeat(101) }))).param).toBe('name');
  });
});

describe('the environment', () => {
  it('merges a patch (null deletes, names left out are kept) and reads back redacted by default', async () => {
    let clock = Date.parse('2026-05-05T10:00:00Z');
    const { store } = freshStore({ now: () => new Date(clock) });
    await store.createCollection({ name: 'acme' });
    const afterFirst = await store.patchEnvironment('acme', {
      OPENAI_API_KEY: 'sk-one',
      ZED: 'z',
      DB_URL: 'pg://x',
    });
    expect(afterFirst).toEqual({
      environment_variables: { DB_URL: REDACTED_VALUE, OPENAI_API_KEY: REDACTED_VALUE, ZED: REDACTED_VALUE },
      redacted: true,
      updated_at: {
        DB_URL: '2026-05-05T10:00:00.000Z',
        OPENAI_API_KEY: '2026-05-05T10:00:00.000Z',
        ZED: '2026-05-05T10:00:00.000Z',
      },
    });
    clock += 60_000;
    await store.patchEnvironment('acme', { OPENAI_API_KEY: 'sk-two', ZED: null, NEVER_SET: null });
    const view = await store.getEnvironment('acme', { reveal: false });
    expect(Object.keys(view.environment_variables)).toEqual(['DB_URL', 'OPENAI_API_KEY']);
    expect(Object.values(view.environment_variables)).toEqual([REDACTED_VALUE, REDACTED_VALUE]);
    expect(view.updated_at).toEqual({
      DB_URL: '2026-05-05T10:00:00.000Z',
      OPENAI_API_KEY: '2026-05-05T10:01:00.000Z',
    });
    expect(JSON.stringify(view)).not.toMatch(/sk-two|pg:\/\/x/);

    const revealed = await store.getEnvironment('acme', { reveal: true });
    expect(revealed.redacted).toBe(false);
    expect(revealed.environment_variables).toEqual({ DB_URL: 'pg://x', OPENAI_API_KEY: 'sk-two' });

    const unchanged = await store.patchEnvironment('acme', {});
    expect(Object.keys(unchanged.environment_variables)).toEqual(['DB_URL', 'OPENAI_API_KEY']);
  });

  it('keeps values in Redis only as v1 envelopes that do not contain them', async () => {
    const { store, prefix } = freshStore();
    await store.createCollection({ name: 'acme' });
    const canary = `canary-${randomBytes(12).toString('hex')}`;
    await store.patchEnvironment('acme', { ANTHROPIC_API_KEY: canary, OTHER: `x${canary}y` });
    const stored = await redis.hgetall(`${prefix}:collection:acme:env`);
    expect(Object.keys(stored).sort()).toEqual(['ANTHROPIC_API_KEY', 'OTHER']);
    for (const v of Object.values(stored)) expect(v).toMatch(/^v1:[\w-]+:[\w-]+:[\w-]+$/);
    const raw = await dump(prefix);
    for (const enc of ['utf8', 'base64', 'base64url', 'hex'] as const) {
      expect(raw.text).not.toContain(Buffer.from(canary).toString(enc));
    }
  });

  it('refuses a value moved to another variable or collection, naming the variable only', async () => {
    const { store, prefix } = freshStore();
    await store.createCollection({ name: 'acme' });
    await store.createCollection({ name: 'rival' });
    await store.patchEnvironment('acme', { SECRET_A: 'the-value-a' });
    await store.patchEnvironment('rival', { SECRET_B: 'placeholder' });
    const envelope = (await redis.hget(`${prefix}:collection:acme:env`, 'SECRET_A'))!;
    await redis.hset(`${prefix}:collection:acme:env`, 'SECRET_C', envelope);
    await redis.hset(`${prefix}:collection:rival:env`, 'SECRET_A', envelope);

    const renamed = await rejected(store.resolveEnvironment('acme', ['SECRET_C']));
    expect(renamed.status).toBe(500);
    expect(renamed.code).toBe('secret_undecryptable');
    expect(renamed.message).toMatch(/SECRET_C of collection acme/);
    expect(renamed.message).not.toContain('the-value-a');
    expect((await rejected(store.resolveEnvironment('rival', ['SECRET_A']))).code).toBe(
      'secret_undecryptable',
    );
    expect((await rejected(store.getEnvironment('rival', { reveal: true }))).code).toBe(
      'secret_undecryptable',
    );
    expect(await store.resolveEnvironment('acme', ['SECRET_A'])).toEqual({ SECRET_A: 'the-value-a' });
  });

  it('cannot be read back with another master key', async () => {
    const { store, prefix } = freshStore();
    await store.createCollection({ name: 'acme' });
    await store.patchEnvironment('acme', { TOKEN: 'abc' });
    const other = new TenancyStore(redis, prefix, new MasterKey(randomBytes(32)));
    const err = await rejected(other.resolveEnvironment('acme', ['TOKEN']));
    expect(err.message).toMatch(/another master key/);
    // Names and redacted reads still work: they do not need the key.
    expect((await other.getEnvironment('acme', { reveal: false })).environment_variables).toEqual({
      TOKEN: REDACTED_VALUE,
    });
  });

  it.each([
    [{ 'BAD-NAME': 'x' }, 'environment_variables.BAD-NAME', /not a usable environment variable name/],
    [{ '1X': 'x' }, 'environment_variables.1X', /not starting with a digit/],
    [{ NUM: 5 }, 'environment_variables.NUM', /NUM must be a string, or null to delete it; got a number/],
    [{ OBJ: { a: 1 } }, 'environment_variables.OBJ', /got an object/],
    [{ EMPTY: '' }, 'environment_variables.EMPTY', /EMPTY is empty\. To delete a variable send null/],
    [{ MASKED: REDACTED_VALUE }, 'environment_variables.MASKED', /placeholder.*leave MASKED out/],
    [{ NUL: 'a\0b' }, 'environment_variables.NUL', /NUL character/],
    [
      { BIG: 'x'.repeat(64 * 1024 + 1) },
      'environment_variables.BIG',
      /65537 bytes; a value may be at most 65536/,
    ],
    [['A', 'b'], 'environment_variables', /must be an object .*got an array/],
    [null, 'environment_variables', /got null/],
  ])('refuses the patch %#, naming the field, and changes nothing', async (patch, param, message) => {
    const { store } = freshStore();
    await store.createCollection({ name: 'acme' });
    await store.patchEnvironment('acme', { KEEP: 'kept' });
    const withGood = Array.isArray(patch) || patch === null ? patch : { GOOD: 'fine', ...patch };
    const err = await rejected(store.patchEnvironment('acme', withGood));
    expect(err.status).toBe(400);
    expect(err.param).toBe(param);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('a\0b');
    expect(await store.resolveEnvironment('acme', ['KEEP', 'GOOD'])).toEqual({ KEEP: 'kept' });
  });

  it(`holds at most ${MAX_VARIABLES} variables, but a patch that deletes as much as it adds is fine`, async () => {
    const { store } = freshStore();
    await store.createCollection({ name: 'acme' });
    const many = Object.fromEntries(Array.from({ length: MAX_VARIABLES }, (_, i) => [`V${i}`, 'x']));
    await store.patchEnvironment('acme', many);
    const over = await rejected(store.patchEnvironment('acme', { ONE_MORE: 'x' }));
    expect(over.param).toBe('environment_variables');
    expect(over.message).toMatch(/501 variables; a collection may hold at most 500/);
    await store.patchEnvironment('acme', { ONE_MORE: 'x', V0: null });
    expect((await store.checkSecrets('acme', [])).configured).toHaveLength(MAX_VARIABLES);
  });

  it('hands the worker the decrypted values of just the names asked for', async () => {
    const { store } = freshStore();
    await store.createCollection({ name: 'acme' });
    await store.patchEnvironment('acme', { A: 'alpha', B: 'beta ✓', C: 'gamma' });
    expect(await store.resolveEnvironment('acme', ['B', 'A', 'MISSING', 'A', 'not-a-name'])).toEqual({
      B: 'beta ✓',
      A: 'alpha',
    });
    expect(await store.resolveEnvironment('acme', [])).toEqual({});
  });

  it('handles variables named like Object.prototype members as any other', async () => {
    const { store } = freshStore();
    await store.createCollection({ name: 'acme' });
    // As a JSON body arrives: "__proto__" is an own key of the parsed object.
    await store.patchEnvironment('acme', JSON.parse('{"__proto__":"p","constructor":"c","toString":"t"}'));
    expect(
      Object.entries(await store.resolveEnvironment('acme', ['__proto__', 'constructor', 'toString'])),
    ).toEqual([
      ['__proto__', 'p'],
      ['constructor', 'c'],
      ['toString', 't'],
    ]);
    expect(
      Object.entries((await store.getEnvironment('acme', { reveal: true })).environment_variables),
    ).toEqual([
      ['__proto__', 'p'],
      ['constructor', 'c'],
      ['toString', 't'],
    ]);
    expect(await store.checkSecrets('acme', ['__proto__', 'hasOwnProperty'])).toEqual({
      configured: ['__proto__', 'constructor', 'toString'],
      missing: ['hasOwnProperty'],
      ready: false,
    });
    await store.patchEnvironment('acme', JSON.parse('{"__proto__":null}'));
    expect(Object.keys(await store.resolveEnvironment('acme', ['__proto__', 'constructor']))).toEqual([
      'constructor',
    ]);
  });

  it('answers check-secrets as the MCP server does: every configured name, the missing ones as asked, ready', async () => {
    const { store } = freshStore();
    await store.createCollection({ name: 'acme' });
    expect(await store.checkSecrets('acme', ['OPENAI_API_KEY'])).toEqual({
      configured: [],
      missing: ['OPENAI_API_KEY'],
      ready: false,
    });
    await store.patchEnvironment('acme', { OPENAI_API_KEY: 'sk', SLACK_TOKEN: 'xoxb', EXTRA: 'e' });
    expect(
      await store.checkSecrets('acme', ['SLACK_TOKEN', 'GITHUB_TOKEN', 'OPENAI_API_KEY', 'GITHUB_TOKEN']),
    ).toEqual({
      configured: ['EXTRA', 'OPENAI_API_KEY', 'SLACK_TOKEN'],
      missing: ['GITHUB_TOKEN', 'GITHUB_TOKEN'],
      ready: false,
    });
    expect(await store.checkSecrets('acme', ['SLACK_TOKEN', 'OPENAI_API_KEY'])).toEqual({
      configured: ['EXTRA', 'OPENAI_API_KEY', 'SLACK_TOKEN'],
      missing: [],
      ready: true,
    });
    expect((await store.checkSecrets('acme', [])).ready).toBe(true);
  });
});

describe('two collections', () => {
  it('never see each other’s keys or variables', async () => {
    const { store } = freshStore();
    await store.createCollection({ name: 'acme' });
    await store.createCollection({ name: 'globex' });
    const acmeKey = await store.createApiKey('acme');
    const globexKey = await store.createApiKey('globex');
    await store.patchEnvironment('acme', { SHARED_NAME: 'acme-value', ACME_ONLY: 'a' });
    await store.patchEnvironment('globex', { SHARED_NAME: 'globex-value' });

    expect((await store.lookupApiKey(acmeKey.key))!.collection).toBe('acme');
    expect((await store.lookupApiKey(globexKey.key))!.collection).toBe('globex');
    expect((await store.listApiKeys('acme')).map((k) => k.id)).toEqual([acmeKey.id]);
    expect((await store.listApiKeys('globex')).map((k) => k.id)).toEqual([globexKey.id]);
    // Revoking another collection's key by its id is a 404, and the key keeps working.
    expect((await rejected(store.revokeApiKey('acme', globexKey.id))).status).toBe(404);
    expect(await store.lookupApiKey(globexKey.key)).not.toBeNull();

    expect((await store.getEnvironment('globex', { reveal: true })).environment_variables).toEqual({
      SHARED_NAME: 'globex-value',
    });
    expect(await store.resolveEnvironment('globex', ['SHARED_NAME', 'ACME_ONLY'])).toEqual({
      SHARED_NAME: 'globex-value',
    });
    expect(await store.checkSecrets('globex', ['ACME_ONLY'])).toEqual({
      configured: ['SHARED_NAME'],
      missing: ['ACME_ONLY'],
      ready: false,
    });
    await store.patchEnvironment('globex', { SHARED_NAME: null });
    expect(await store.resolveEnvironment('acme', ['SHARED_NAME'])).toEqual({ SHARED_NAME: 'acme-value' });
  });

  it('under different prefixes share nothing, even with the same names', async () => {
    const a = freshStore();
    const b = freshStore();
    await a.store.createCollection({ name: 'acme' });
    await b.store.createCollection({ name: 'acme' });
    const key = await a.store.createApiKey('acme');
    await a.store.patchEnvironment('acme', { X: 'from-a' });
    expect(await b.store.lookupApiKey(key.key)).toBeNull();
    expect(await b.store.checkSecrets('acme', ['X'])).toEqual({
      configured: [],
      missing: ['X'],
      ready: false,
    });
  });
});
