/**
 * Every Redis key tenancy uses, in one place. Collection names and variable names are checked
 * before they reach here (no ":" can appear in them), so a key always parses back unambiguously.
 */
export class TenancyKeys {
  constructor(readonly prefix: string) {}

  /** Hash: collection name → JSON {name, description, created_at}. */
  collections(): string {
    return `${this.prefix}:collections`;
  }
  /** Hash: variable name → encrypted envelope (`v1:…`). */
  environment(collection: string): string {
    return `${this.prefix}:collection:${collection}:env`;
  }
  /** Hash: variable name → when it was last set (ISO 8601). */
  environmentUpdated(collection: string): string {
    return `${this.prefix}:collection:${collection}:env-updated`;
  }
  /** Sorted set: the collection's API key ids, scored by creation time (ms). */
  apiKeyIndex(collection: string): string {
    return `${this.prefix}:collection:${collection}:api-keys`;
  }
  /** Hash: one API key's record (collection, name, prefix, created_at, last_used_at, sha256). */
  apiKey(id: string): string {
    return `${this.prefix}:api-key:${id}`;
  }
  /** String: the id of the key whose sha256 this is; what a request's key is looked up by. */
  apiKeyByHash(sha256: string): string {
    return `${this.prefix}:api-key-sha256:${sha256}`;
  }
  /** Hash: the collection's budget settings (field → JSON number), see budgets.ts. */
  budgetSettings(collection: string): string {
    return `${this.prefix}:collection:${collection}:budget`;
  }
  /** Hash: the collection's egress setting (policy, allow as JSON), see egress-settings.ts. */
  egressSettings(collection: string): string {
    return `${this.prefix}:collection:${collection}:egress`;
  }
  /** Integer: micro-dollars the collection's runs spent on one UTC day (YYYY-MM-DD), as the gateway priced them. */
  spend(collection: string, day: string): string {
    return `${this.prefix}:collection:${collection}:spend:${day}`;
  }
  /** Set: sha256 of every revoked key, so a revoked key is never registered again. */
  revokedApiKeys(): string {
    return `${this.prefix}:api-keys-revoked`;
  }
}
