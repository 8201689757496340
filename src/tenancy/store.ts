/**
 * Tenancy in Redis: collections, their API keys and their environment variables.
 *
 * Every method takes the collection it acts on and touches nothing of another one; the HTTP
 * layer decides which collection a request may name (its key's) and answers 404 for any other.
 * Secret values are encrypted before they reach Redis and are decrypted only when asked for by
 * name (the worker) or with `reveal` (the owner): by default a read shows names only.
 */

import type { ChainableCommander, Redis } from 'ioredis';
import type { CollectionEgress, EgressPolicy } from '../egress/policy.js';
import { AppError, badRequest, infraError, notFound, quoted } from '../errors.js';
import { isPlainObject } from '../json.js';
import {
  API_KEY_FORM,
  type ApiKeyInfo,
  type ApiKeyPrincipal,
  type CreatedApiKey,
  displayPrefix,
  generateApiKey,
  hashApiKey,
  isWellFormedApiKey,
  newApiKeyId,
} from './api-keys.js';
import { type BudgetMaxima, type BudgetSettings, CollectionBudgets, nextUtcDay } from './budgets.js';
import { applyEgressPatch, CollectionEgressStore, type EgressSettingsPatch } from './egress-settings.js';
import { TenancyKeys } from './keys.js';
import { assertCollectionName, envNameProblem, isCollectionName } from './names.js';
import { decryptValue, encryptValue, type MasterKey } from './secrets.js';

/**
 * What a hidden value reads as. Fixed, whatever the value: its length would say something about
 * it (a short password, which provider's key) and helps nobody check it is the right one.
 */
export const REDACTED_VALUE = '••••••••';
/** Longest value accepted: room for a PEM key or a cloud service-account JSON. */
export const MAX_VALUE_BYTES = 64 * 1024;
/** Most variables one collection may hold (keeps a read of them all small). */
export const MAX_VARIABLES = 500;
export const MAX_DESCRIPTION_CHARS = 1000;
export const MAX_KEY_NAME_CHARS = 100;
/** `last_used_at` is written at most this often per key. */
const TOUCH_EVERY_MS = 60_000;
const ENV_PARAM = 'environment_variables';

export interface CollectionRecord {
  name: string;
  description: string;
  created_at: string;
}

/** A collection's environment as its owner reads it (Jetty's `{environment_variables}` and more). */
export interface EnvironmentView {
  /** Every variable by name; values are REDACTED_VALUE unless the read asked to reveal them. */
  environment_variables: Record<string, string>;
  redacted: boolean;
  /** When each variable was last set. */
  updated_at: Record<string, string>;
}

/** A change to the environment: a string sets the variable, null deletes it; others are kept. */
export type EnvironmentPatch = Readonly<Record<string, string | null>>;

/** The MCP server's check-secrets answer, and what the run pre-flight uses. */
export interface SecretsCheck {
  /** Every variable the collection has, sorted (as the MCP server reports them). */
  configured: string[];
  /** The names asked about that the collection lacks, in the order asked (repeats kept, as MCP does). */
  missing: string[];
  ready: boolean;
}

/** The result of registering a given key (bootstrap): what happened to it. */
export type RegisterApiKeyResult =
  | { status: 'created'; key: ApiKeyInfo }
  | { status: 'exists'; key: ApiKeyInfo }
  | { status: 'revoked' };

type AddKeyResult = RegisterApiKeyResult | { status: 'has-keys' };

export interface TenancyStoreOptions {
  /** The clock; tests pass their own. */
  now?: () => Date;
}

// Adds a key unless its hash is known (returns the owner's id) or was revoked; with ARGV[2] = '1',
// only if the collection has no key yet (so concurrent bootstraps make one key, not two).
// KEYS: by-hash, record, collection index, revoked set.
// ARGV: id, only-if-none, created (ms), sha256, then the record's field/value pairs.
const ADD_KEY = `
local owner = redis.call('GET', KEYS[1])
if owner then return {'exists', owner} end
if redis.call('SISMEMBER', KEYS[4], ARGV[4]) == 1 then return {'revoked', ''} end
if ARGV[2] == '1' and redis.call('ZCARD', KEYS[3]) > 0 then return {'has-keys', ''} end
redis.call('SET', KEYS[1], ARGV[1])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return {'created', ARGV[1]}
`;

// Records a use, unless the key was revoked meanwhile (an HSET would bring its record back).
const TOUCH_KEY = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1]) end
return 0
`;

async function execAll(multi: ChainableCommander): Promise<void> {
  const results = await multi.exec();
  if (results === null) throw infraError('A Redis transaction was discarded.', 'redis_transaction_failed');
  for (const [err] of results) {
    if (err) throw infraError(`Redis refused a tenancy write: ${err.message}`, 'redis_write_failed', err);
  }
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)];
}

function sortedRecord(entries: Iterable<[string, string]>): Record<string, string> {
  return Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Checks a patch whole, before anything is written: one bad entry changes nothing. */
function validatePatch(patch: unknown): [string, string | null][] {
  if (!isPlainObject(patch)) {
    throw badRequest(
      `${ENV_PARAM} must be an object of NAME: "value" pairs (null deletes a variable); got ${typeName(patch)}.`,
      ENV_PARAM,
    );
  }
  const entries: [string, string | null][] = [];
  for (const [name, value] of Object.entries(patch)) {
    const param = `${ENV_PARAM}.${name.slice(0, 128)}`;
    const nameProblem = envNameProblem(name);
    if (nameProblem !== null) throw badRequest(nameProblem, param, 'invalid_variable_name');
    // Messages name the variable and never repeat its value.
    if (value === null) {
      entries.push([name, null]);
      continue;
    }
    if (typeof value !== 'string') {
      throw badRequest(`${name} must be a string, or null to delete it; got ${typeName(value)}.`, param);
    }
    if (value === '') {
      throw badRequest(`${name} is empty. To delete a variable send null; a value cannot be empty.`, param);
    }
    if (value === REDACTED_VALUE) {
      throw badRequest(
        `${name} is set to the placeholder that reads return for hidden values. Send the real value, or leave ${name} out of the patch to keep the one stored.`,
        param,
      );
    }
    if (value.includes('\0')) {
      throw badRequest(`${name} contains a NUL character, which an environment variable cannot hold.`, param);
    }
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > MAX_VALUE_BYTES) {
      throw badRequest(`${name} is ${bytes} bytes; a value may be at most ${MAX_VALUE_BYTES} bytes.`, param);
    }
    entries.push([name, value]);
  }
  return entries;
}

export class TenancyStore {
  private readonly keys: TenancyKeys;
  private readonly now: () => Date;
  private readonly budgets: CollectionBudgets;
  private readonly egress: CollectionEgressStore;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly masterKey: MasterKey,
    opts: TenancyStoreOptions = {},
  ) {
    this.keys = new TenancyKeys(prefix);
    this.now = opts.now ?? (() => new Date());
    this.budgets = new CollectionBudgets(redis, this.keys);
    this.egress = new CollectionEgressStore(redis, this.keys);
  }

  // ── Budgets ────────────────────────────────────────────────────────────────────────────

  /** The collection's budget settings (run defaults, daily spend limit). */
  async getBudgetSettings(collection: string): Promise<BudgetSettings> {
    await this.requireCollection(collection);
    return this.budgets.settings(collection);
  }

  /** Changes them; a run default above the operator's maximum is a 400 naming it. */
  async patchBudgetSettings(
    collection: string,
    patch: unknown,
    maxima: BudgetMaxima,
  ): Promise<BudgetSettings> {
    await this.requireCollection(collection);
    return this.budgets.patch(collection, patch, maxima);
  }

  // ── Egress ─────────────────────────────────────────────────────────────────────────────

  /** The collection's network policy setting (null: the operator's). */
  async getEgressSettings(collection: string): Promise<CollectionEgress> {
    await this.requireCollection(collection);
    return this.egress.get(collection);
  }

  /** The setting after `patch`, checked against the operator's policy; nothing is written. */
  async checkEgressPatch(
    collection: string,
    patch: EgressSettingsPatch,
    operator: EgressPolicy,
  ): Promise<CollectionEgress> {
    return applyEgressPatch(await this.getEgressSettings(collection), patch, operator);
  }

  async putEgressSettings(collection: string, settings: CollectionEgress): Promise<void> {
    await this.requireCollection(collection);
    await this.egress.put(collection, settings);
  }

  /** Adds a model call's cost (as the gateway priced it) to today's (UTC) spend of the collection. */
  addSpend(collection: string, usd: number): Promise<void> {
    return this.budgets.addSpend(collection, usd, this.now());
  }

  /** What the collection spent today (UTC), and when that day ends. */
  async spendToday(collection: string): Promise<{ usd: number; resetsAt: Date }> {
    const now = this.now();
    return { usd: await this.budgets.spentOn(collection, now), resetsAt: nextUtcDay(now) };
  }

  // ── Collections ────────────────────────────────────────────────────────────────────────

  /** Creates a collection; 400 for a name that breaks the rule, 409 if it exists. */
  async createCollection(input: { name: unknown; description?: unknown }): Promise<CollectionRecord> {
    const name = assertCollectionName(input.name, 'name');
    const description = input.description ?? '';
    if (typeof description !== 'string') {
      throw badRequest(`description must be a string; got ${typeName(description)}.`, 'description');
    }
    if (description.length > MAX_DESCRIPTION_CHARS) {
      throw badRequest(
        `description has ${description.length} characters; it may have at most ${MAX_DESCRIPTION_CHARS}.`,
        'description',
      );
    }
    const record: CollectionRecord = { name, description, created_at: this.now().toISOString() };
    const added = await this.redis.hsetnx(this.keys.collections(), name, JSON.stringify(record));
    if (added === 0) {
      throw new AppError(`A collection named ${quoted(name)} already exists. Choose another name.`, {
        status: 409,
        type: 'conflict_error',
        code: 'collection_exists',
        param: 'name',
      });
    }
    return record;
  }

  /** The collection, or null if there is none by that name (any string may be asked about). */
  async findCollection(name: string): Promise<CollectionRecord | null> {
    if (!isCollectionName(name)) return null;
    const raw = await this.redis.hget(this.keys.collections(), name);
    return raw === null ? null : (JSON.parse(raw) as CollectionRecord);
  }

  /** The collection, or a 404. */
  async getCollection(name: string): Promise<CollectionRecord> {
    const found = await this.findCollection(name);
    if (!found) throw this.noCollection(name);
    return found;
  }

  /** Every collection, by name. */
  async listCollections(): Promise<CollectionRecord[]> {
    const all = await this.redis.hvals(this.keys.collections());
    return all
      .map((raw) => JSON.parse(raw) as CollectionRecord)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private noCollection(name: string): AppError {
    return notFound(`No collection named ${quoted(name)}.`, 'collection_not_found');
  }

  private async requireCollection(name: string): Promise<void> {
    if (!isCollectionName(name) || (await this.redis.hexists(this.keys.collections(), name)) === 0) {
      throw this.noCollection(name);
    }
  }

  // ── API keys ───────────────────────────────────────────────────────────────────────────

  /** Makes a new key for the collection. The answer is the only time the key itself is seen. */
  async createApiKey(collection: string, opts: { name?: unknown } = {}): Promise<CreatedApiKey> {
    const made = await this.mintKey(collection, opts.name, false);
    if (!made) throw new Error('A new API key was not stored.');
    return made;
  }

  /**
   * Makes the collection's first key, or nothing (null) if it has one already. Atomic: processes
   * starting together make one key between them.
   */
  async createFirstApiKey(collection: string, opts: { name?: unknown } = {}): Promise<CreatedApiKey | null> {
    return this.mintKey(collection, opts.name, true);
  }

  private async mintKey(
    collection: string,
    name: unknown,
    onlyIfNone: boolean,
  ): Promise<CreatedApiKey | null> {
    await this.requireCollection(collection);
    const label = this.keyLabel(name);
    const key = generateApiKey();
    const added = await this.addKey(collection, key, label, onlyIfNone);
    if (added.status === 'created') return { ...added.key, key };
    if (added.status === 'has-keys') return null;
    // 256 random bits do not collide: anything else is a bug worth hearing about.
    throw new Error(`A new API key was not stored (${added.status}).`);
  }

  /**
   * Registers a key given from outside (the operator's bootstrap key). Idempotent: a key already
   * registered to this collection is `exists`; one of another collection is a 409 (on `param`); a
   * key once revoked is never taken back (`revoked`).
   */
  async registerApiKey(
    collection: string,
    key: string,
    opts: { name?: unknown; param?: string } = {},
  ): Promise<RegisterApiKeyResult> {
    const param = opts.param ?? 'key';
    await this.requireCollection(collection);
    if (!isWellFormedApiKey(key)) {
      throw badRequest(`An API key must be ${API_KEY_FORM}.`, param, 'invalid_api_key_format');
    }
    const added = await this.addKey(collection, key, this.keyLabel(opts.name), false);
    if (added.status === 'has-keys') throw new Error('A key was refused without being asked to be.');
    if (added.status === 'exists' && added.key.collection !== collection) {
      throw new AppError('This API key already belongs to another collection. Use a new key.', {
        status: 409,
        type: 'conflict_error',
        code: 'api_key_taken',
        param,
      });
    }
    return added;
  }

  private keyLabel(name: unknown): string {
    if (name === undefined || name === null) return '';
    if (typeof name !== 'string') throw badRequest(`name must be a string; got ${typeName(name)}.`, 'name');
    if (name.length > MAX_KEY_NAME_CHARS) {
      throw badRequest(
        `name has ${name.length} characters; a key's name may have at most ${MAX_KEY_NAME_CHARS}.`,
        'name',
      );
    }
    return name;
  }

  private async addKey(
    collection: string,
    key: string,
    label: string,
    onlyIfNone: boolean,
  ): Promise<AddKeyResult> {
    const sha256 = hashApiKey(key);
    const id = newApiKeyId();
    const created = this.now();
    const info: ApiKeyInfo = {
      id,
      collection,
      name: label,
      prefix: displayPrefix(key),
      created_at: created.toISOString(),
      last_used_at: null,
    };
    const [status, ownerId] = (await this.redis.eval(
      ADD_KEY,
      4,
      this.keys.apiKeyByHash(sha256),
      this.keys.apiKey(id),
      this.keys.apiKeyIndex(collection),
      this.keys.revokedApiKeys(),
      id,
      onlyIfNone ? '1' : '0',
      String(created.getTime()),
      sha256,
      ...['collection', collection, 'name', label, 'prefix', info.prefix, 'created_at', info.created_at],
      ...['last_used_at', '', 'sha256', sha256],
    )) as [string, string];
    if (status === 'created') return { status, key: info };
    if (status === 'has-keys' || status === 'revoked') return { status };
    const existing = await this.readKey(ownerId);
    if (!existing) throw new Error('An API key hash points at a key record that is gone.');
    return { status: 'exists', key: existing };
  }

  private async readKey(id: string): Promise<ApiKeyInfo | null> {
    const h = await this.redis.hgetall(this.keys.apiKey(id));
    return h.collection ? this.toInfo(id, h) : null;
  }

  private toInfo(id: string, h: Record<string, string>): ApiKeyInfo {
    return {
      id,
      collection: h.collection ?? '',
      name: h.name ?? '',
      prefix: h.prefix ?? '',
      created_at: h.created_at ?? '',
      last_used_at: h.last_used_at ? h.last_used_at : null,
    };
  }

  /**
   * Who a presented key belongs to, or null for a key that is malformed, unknown or revoked. The
   * key is hashed before it is looked up, so how long this takes says nothing about how close a
   * guess was.
   */
  async lookupApiKey(key: string): Promise<ApiKeyPrincipal | null> {
    if (!isWellFormedApiKey(key)) return null;
    const id = await this.redis.get(this.keys.apiKeyByHash(hashApiKey(key)));
    if (id === null) return null;
    const h = await this.redis.hgetall(this.keys.apiKey(id));
    if (!h.collection) return null;
    const now = this.now();
    const last = h.last_used_at ? Date.parse(h.last_used_at) : Number.NaN;
    if (!(now.getTime() - last < TOUCH_EVERY_MS)) {
      await this.redis.eval(TOUCH_KEY, 1, this.keys.apiKey(id), now.toISOString());
    }
    return { keyId: id, collection: h.collection };
  }

  /** The collection's keys, newest first: ids, names, prefixes and times; never a key or hash. */
  async listApiKeys(collection: string): Promise<ApiKeyInfo[]> {
    await this.requireCollection(collection);
    const ids = await this.redis.zrevrange(this.keys.apiKeyIndex(collection), 0, -1);
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.apiKey(id));
    const rows = (await pipe.exec()) ?? [];
    const out: ApiKeyInfo[] = [];
    rows.forEach(([err, h], i) => {
      if (err) throw infraError(`Redis refused a read: ${err.message}`, 'redis_read_failed', err);
      const rec = h as Record<string, string>;
      if (rec.collection === collection) out.push(this.toInfo(ids[i]!, rec));
    });
    return out;
  }

  /** Revokes a key at once: 404 if the collection has no key with that id. */
  async revokeApiKey(collection: string, id: string): Promise<void> {
    await this.requireCollection(collection);
    const h = await this.redis.hgetall(this.keys.apiKey(id));
    if (h.collection !== collection || !h.sha256) {
      throw notFound(`Collection ${collection} has no API key with id ${quoted(id)}.`, 'api_key_not_found');
    }
    const multi = this.redis.multi();
    multi.sadd(this.keys.revokedApiKeys(), h.sha256);
    multi.del(this.keys.apiKeyByHash(h.sha256), this.keys.apiKey(id));
    multi.zrem(this.keys.apiKeyIndex(collection), id);
    await execAll(multi);
  }

  // ── Environment ────────────────────────────────────────────────────────────────────────

  /**
   * The collection's variables. Names always; values only with `reveal: true`, otherwise each
   * reads as REDACTED_VALUE.
   */
  async getEnvironment(collection: string, opts: { reveal: boolean }): Promise<EnvironmentView> {
    await this.requireCollection(collection);
    const [stored, updated] = await Promise.all([
      this.redis.hgetall(this.keys.environment(collection)),
      this.redis.hgetall(this.keys.environmentUpdated(collection)),
    ]);
    const names = Object.keys(stored);
    const values = names.map((name): [string, string] => [
      name,
      opts.reveal ? decryptValue(this.masterKey, { collection, name }, stored[name]!) : REDACTED_VALUE,
    ]);
    return {
      environment_variables: sortedRecord(values),
      redacted: !opts.reveal,
      updated_at: sortedRecord(names.map((name): [string, string] => [name, updated[name] ?? ''])),
    };
  }

  /**
   * Merges `patch` into the environment: a string sets, null deletes, names left out are kept.
   * The whole patch is checked first; a 400 names the variable at fault and changes nothing.
   * Answers the environment after the change, redacted.
   */
  async patchEnvironment(collection: string, patch: unknown): Promise<EnvironmentView> {
    await this.requireCollection(collection);
    const entries = validatePatch(patch);
    if (entries.length > 0) {
      const envKey = this.keys.environment(collection);
      const updatedKey = this.keys.environmentUpdated(collection);
      const present = new Set(await this.redis.hkeys(envKey));
      for (const [name, value] of entries) {
        if (value === null) present.delete(name);
        else present.add(name);
      }
      if (present.size > MAX_VARIABLES) {
        throw badRequest(
          `This change would leave ${present.size} variables; a collection may hold at most ${MAX_VARIABLES}. Delete some (set them to null) first.`,
          ENV_PARAM,
        );
      }
      const at = this.now().toISOString();
      const multi = this.redis.multi();
      for (const [name, value] of entries) {
        if (value === null) {
          multi.hdel(envKey, name);
          multi.hdel(updatedKey, name);
        } else {
          multi.hset(envKey, name, encryptValue(this.masterKey, { collection, name }, value));
          multi.hset(updatedKey, name, at);
        }
      }
      await execAll(multi);
    }
    return this.getEnvironment(collection, { reveal: false });
  }

  /**
   * The decrypted values of just these names, for the worker to hand to one run. Names the
   * collection lacks are absent from the answer (`checkSecrets` says which).
   */
  async resolveEnvironment(collection: string, names: readonly string[]): Promise<Record<string, string>> {
    await this.requireCollection(collection);
    const wanted = unique(names).filter((n) => envNameProblem(n) === null);
    if (wanted.length === 0) return {};
    const stored = await this.redis.hmget(this.keys.environment(collection), ...wanted);
    // fromEntries, not assignment: a variable may be called __proto__.
    return Object.fromEntries(
      wanted.flatMap((name, i): [string, string][] => {
        const envelope = stored[i];
        return envelope ? [[name, decryptValue(this.masterKey, { collection, name }, envelope)]] : [];
      }),
    );
  }

  /** Which of `names` the collection has: the MCP server's check-secrets answer. */
  async checkSecrets(collection: string, names: readonly string[]): Promise<SecretsCheck> {
    await this.requireCollection(collection);
    const configured = (await this.redis.hkeys(this.keys.environment(collection))).sort();
    const have = new Set(configured);
    const missing = names.filter((n) => !have.has(n));
    return { configured, missing, ready: missing.length === 0 };
  }

  // ── One run's own secrets ──────────────────────────────────────────────────────────────

  /**
   * Seals a run's secret parameters for its job: encrypted, and bound to the collection and the
   * run, so the queue never holds them in the clear and no other run can open them.
   */
  sealRunSecrets(collection: string, runId: string, values: Readonly<Record<string, string>>): string {
    return encryptValue(this.masterKey, { collection, name: `run:${runId}` }, JSON.stringify(values));
  }

  openRunSecrets(collection: string, runId: string, sealed: string): Record<string, string> {
    const plain = decryptValue(this.masterKey, { collection, name: `run:${runId}` }, sealed);
    return JSON.parse(plain) as Record<string, string>;
  }
}
