/**
 * API keys: `jrk_` + 32 random bytes in base64url. The key is shown once, when it is made; the
 * server keeps only its sha256 (to find it) and a short prefix (so a person can tell keys apart).
 * A key of 256 random bits needs no slow hash: nobody can guess one back from its sha256.
 */
import { createHash, randomBytes } from 'node:crypto';

export const API_KEY_PREFIX = 'jrk_';
const KEY_BYTES = 32;
/** base64url of 32 bytes, unpadded. */
const KEY_BODY_CHARS = 43;
export const API_KEY_RE = new RegExp(`^${API_KEY_PREFIX}[A-Za-z0-9_-]{${KEY_BODY_CHARS}}$`);
/** Characters of the key kept for display: `jrk_` and 4 more (24 of the 256 bits: not a secret). */
const DISPLAY_CHARS = API_KEY_PREFIX.length + 4;

/** What a key's owner may see about it. Neither the key nor its hash is ever part of it. */
export interface ApiKeyInfo {
  id: string;
  collection: string;
  /** A label the owner chose ("ci", "laptop"); empty when none. */
  name: string;
  /** The first characters of the key, e.g. `jrk_ab12`; shown as `jrk_ab12…`. */
  prefix: string;
  created_at: string;
  /** Updated at most once a minute, so a busy key does not write on every request. */
  last_used_at: string | null;
}

/** The answer to creating a key: the only time `key` is ever returned. */
export interface CreatedApiKey extends ApiKeyInfo {
  key: string;
}

/** Who a presented key belongs to. */
export interface ApiKeyPrincipal {
  keyId: string;
  collection: string;
}

export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(KEY_BYTES).toString('base64url');
}

/** True for a string shaped like a key this server makes (says nothing about whether it exists). */
export function isWellFormedApiKey(key: string): boolean {
  return API_KEY_RE.test(key);
}

/** The stored form of a key: hex sha256 of its whole text. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function displayPrefix(key: string): string {
  return key.slice(0, DISPLAY_CHARS);
}

/** A key's public id (used to list and revoke it): random, unrelated to the key itself. */
export function newApiKeyId(): string {
  return `key_${randomBytes(9).toString('base64url')}`;
}

export const API_KEY_FORM =
  `"${API_KEY_PREFIX}" followed by ${KEY_BODY_CHARS} base64url characters (32 random bytes), ` +
  `e.g. from: node -e "console.log('${API_KEY_PREFIX}'+require('crypto').randomBytes(32).toString('base64url'))"`;
