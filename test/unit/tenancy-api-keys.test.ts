import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  API_KEY_RE,
  displayPrefix,
  generateApiKey,
  hashApiKey,
  isWellFormedApiKey,
  newApiKeyId,
} from '../../src/tenancy/api-keys.js';

describe('API keys', () => {
  it('are jrk_ and 32 random bytes in base64url, different every time', () => {
    const keys = new Set(Array.from({ length: 200 }, generateApiKey));
    expect(keys.size).toBe(200);
    for (const key of keys) {
      expect(key).toMatch(/^jrk_[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(key.slice(4), 'base64url')).toHaveLength(32);
      expect(isWellFormedApiKey(key)).toBe(true);
    }
  });

  it('are stored as the hex sha256 of the whole key', () => {
    const key = generateApiKey();
    expect(hashApiKey(key)).toBe(createHash('sha256').update(key).digest('hex'));
    expect(hashApiKey(key)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashApiKey(key)).not.toContain(key.slice(4));
  });

  it('keep only jrk_ and four characters for display', () => {
    const key = generateApiKey();
    expect(displayPrefix(key)).toBe(key.slice(0, 8));
    expect(displayPrefix(key)).toMatch(/^jrk_.{4}$/);
  });

  it('tells a well-formed key from anything else', () => {
    const key = generateApiKey();
    for (const bad of [
      '',
      'jrk_',
      key.slice(0, -1),
      `${key}A`,
      `mlc_${key.slice(4)}`,
      `${key.slice(0, -1)}=`,
      `${key.slice(0, -1)}+`,
      ` ${key}`,
      `Bearer ${key}`,
    ]) {
      expect(isWellFormedApiKey(bad), bad).toBe(false);
      expect(API_KEY_RE.test(bad)).toBe(false);
    }
  });

  it('have ids unrelated to the key', () => {
    const ids = new Set(Array.from({ length: 100 }, newApiKeyId));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^key_[A-Za-z0-9_-]{12}$/);
  });
});
