/**
 * The first collection and key of a fresh install, in one idempotent call: run it on every start
 * (from JETTY_BOOTSTRAP_COLLECTION / JETTY_BOOTSTRAP_API_KEY) or from a CLI command, as often as
 * you like, from as many processes at once as you like.
 */
import { AppError } from '../errors.js';
import type { ApiKeyInfo } from './api-keys.js';
import { assertCollectionName } from './names.js';
import type { CollectionRecord, TenancyStore } from './store.js';

export interface BootstrapOptions {
  /** The collection to make sure of. */
  collection: string;
  description?: string;
  /**
   * A key to make sure of (the operator chose it, so it is never echoed back). Without one, a key
   * is generated only if the collection has none yet.
   */
  apiKey?: string;
}

/**
 * - `generated`: the collection had no key; `generatedKey` holds a new one, shown this once.
 * - `registered`: the given key now opens the collection.
 * - `already-registered`: the given key already did; nothing changed.
 * - `collection-has-keys`: no key given and the collection has one; nothing changed.
 * - `revoked`: the given key was revoked through the API and stays revoked; tell the operator to
 *   unset or replace it (refusing to start over a stale setting would help nobody).
 */
export type BootstrapKeyOutcome =
  | 'generated'
  | 'registered'
  | 'already-registered'
  | 'collection-has-keys'
  | 'revoked';

export interface BootstrapResult {
  collection: CollectionRecord;
  createdCollection: boolean;
  createdApiKey: boolean;
  apiKeyOutcome: BootstrapKeyOutcome;
  /** The key concerned (null for `collection-has-keys` and `revoked`). */
  apiKey: ApiKeyInfo | null;
  /** Only for `generated`: print it once, it cannot be read back. */
  generatedKey: string | null;
}

const BOOTSTRAP_KEY_NAME = 'bootstrap';

function isConflict(err: unknown): boolean {
  return err instanceof AppError && err.status === 409;
}

export async function ensureBootstrap(store: TenancyStore, opts: BootstrapOptions): Promise<BootstrapResult> {
  assertCollectionName(opts.collection, 'collection');
  let createdCollection = false;
  let collection = await store.findCollection(opts.collection);
  if (!collection) {
    try {
      collection = await store.createCollection({ name: opts.collection, description: opts.description });
      createdCollection = true;
    } catch (err) {
      // Another process made it between our read and our write: that is the outcome we wanted.
      if (!isConflict(err)) throw err;
      collection = await store.getCollection(opts.collection);
    }
  }
  const base = { collection, createdCollection };

  if (opts.apiKey === undefined) {
    const first = await store.createFirstApiKey(collection.name, { name: BOOTSTRAP_KEY_NAME });
    if (first === null) {
      return {
        ...base,
        createdApiKey: false,
        apiKeyOutcome: 'collection-has-keys',
        apiKey: null,
        generatedKey: null,
      };
    }
    const { key, ...info } = first;
    return { ...base, createdApiKey: true, apiKeyOutcome: 'generated', apiKey: info, generatedKey: key };
  }

  const result = await store.registerApiKey(collection.name, opts.apiKey, {
    name: BOOTSTRAP_KEY_NAME,
    param: 'apiKey',
  });
  switch (result.status) {
    case 'created':
      return {
        ...base,
        createdApiKey: true,
        apiKeyOutcome: 'registered',
        apiKey: result.key,
        generatedKey: null,
      };
    case 'exists':
      return {
        ...base,
        createdApiKey: false,
        apiKeyOutcome: 'already-registered',
        apiKey: result.key,
        generatedKey: null,
      };
    case 'revoked':
      return { ...base, createdApiKey: false, apiKeyOutcome: 'revoked', apiKey: null, generatedKey: null };
  }
}
