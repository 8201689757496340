import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import {
  decryptValue,
  EnvelopeError,
  encryptValue,
  formatEnvelope,
  generateMasterKey,
  MasterKey,
  MasterKeyError,
  parseEnvelope,
  parseMasterKey,
} from '../../src/tenancy/secrets.js';

const RAW = randomBytes(32);
const KEY = new MasterKey(RAW);
const CTX = { collection: 'acme', name: 'OPENAI_API_KEY' };
const SECRET = 'sk-canary-4f1c9e0b7a';

function undecryptable(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected decryption to fail');
}

describe('the master key', () => {
  it('is read from 64 hex digits, base64 or base64url, with or without surrounding space', () => {
    for (const text of [
      RAW.toString('hex'),
      RAW.toString('hex').toUpperCase(),
      RAW.toString('base64'),
      RAW.toString('base64').replace(/=$/, ''),
      RAW.toString('base64url'),
      `  ${RAW.toString('base64')}\n`,
    ]) {
      expect(parseMasterKey(text).bytes().equals(RAW), text).toBe(true);
    }
    expect(parseMasterKey(generateMasterKey()).bytes()).toHaveLength(32);
  });

  it('refuses anything else with a message naming the variable and how to make one, not the value', () => {
    const cases = [
      '',
      'hunter2',
      randomBytes(16).toString('hex'),
      randomBytes(31).toString('base64'),
      randomBytes(33).toString('base64'),
      `${RAW.toString('hex').slice(0, 63)}g`,
    ];
    for (const text of cases) {
      let err: unknown;
      try {
        parseMasterKey(text, 'JETTY_MASTER_KEY');
      } catch (e) {
        err = e;
      }
      expect(err, text).toBeInstanceOf(MasterKeyError);
      const message = (err as Error).message;
      expect(message).toMatch(/^JETTY_MASTER_KEY /);
      expect(message).toMatch(/openssl rand -base64 32/);
      if (text !== '') expect(message).not.toContain(text);
    }
  });

  it('never shows its bytes when logged or serialised', () => {
    const shown = [String(KEY), JSON.stringify({ key: KEY }), inspect(KEY), inspect({ nested: KEY })].join(
      ' ',
    );
    expect(shown).not.toContain(RAW.toString('hex'));
    expect(shown).not.toContain(RAW.toString('base64'));
    expect(shown).toContain('[MasterKey]');
  });

  it('must be 32 bytes', () => {
    expect(() => new MasterKey(randomBytes(16))).toThrow(/32 bytes/);
  });
});

describe('encrypting a value', () => {
  it('round-trips any text, empty and non-ASCII included', () => {
    for (const text of [SECRET, '', 'ünïcödé ✓ 🔑', 'line1\nline2', 'x'.repeat(64 * 1024)]) {
      const envelope = encryptValue(KEY, CTX, text);
      expect(decryptValue(KEY, CTX, envelope)).toBe(text);
    }
  });

  it('stores a v1 envelope that does not contain the value, with a new IV every time', () => {
    const a = encryptValue(KEY, CTX, SECRET);
    const b = encryptValue(KEY, CTX, SECRET);
    expect(a).toMatch(/^v1:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]{22}:[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
    expect(parseEnvelope(a).iv.equals(parseEnvelope(b).iv)).toBe(false);
    for (const enc of ['utf8', 'base64', 'base64url', 'hex'] as const) {
      expect(a).not.toContain(Buffer.from(SECRET).toString(enc));
    }
  });

  it('fails for a ciphertext moved to another collection or another name', () => {
    const envelope = encryptValue(KEY, CTX, SECRET);
    const moved = undecryptable(() => decryptValue(KEY, { collection: 'other', name: CTX.name }, envelope));
    expect(moved.status).toBe(500);
    expect(moved.code).toBe('secret_undecryptable');
    expect(moved.retryable).toBe(false);
    expect(moved.message).toMatch(/OPENAI_API_KEY of collection other cannot be decrypted/);
    expect(moved.message).not.toContain(SECRET);
    undecryptable(() =>
      decryptValue(KEY, { collection: CTX.collection, name: 'ANTHROPIC_API_KEY' }, envelope),
    );
  });

  it('binds collection and name unambiguously (no shifting characters between them)', () => {
    const envelope = encryptValue(KEY, { collection: 'ab', name: 'C' }, SECRET);
    undecryptable(() => decryptValue(KEY, { collection: 'a', name: 'bC' }, envelope));
  });

  it('fails with another master key, saying so and not showing the value', () => {
    const envelope = encryptValue(KEY, CTX, SECRET);
    const other = new MasterKey(randomBytes(32));
    const err = undecryptable(() => decryptValue(other, CTX, envelope));
    expect(err.message).toMatch(/another master key/);
    expect(err.message).not.toContain(SECRET);
  });

  it('fails when any part of the envelope is altered', () => {
    const e = parseEnvelope(encryptValue(KEY, CTX, SECRET));
    const flip = (b: Buffer, i = 0) => {
      const c = Buffer.from(b);
      c[i] = c[i]! ^ 1;
      return c;
    };
    for (const altered of [
      { ...e, iv: flip(e.iv) },
      { ...e, tag: flip(e.tag, 15) },
      { ...e, ciphertext: flip(e.ciphertext, 3) },
      { ...e, ciphertext: e.ciphertext.subarray(0, -1) },
      { ...e, ciphertext: Buffer.concat([e.ciphertext, Buffer.from([0])]) },
    ]) {
      undecryptable(() => decryptValue(KEY, CTX, formatEnvelope(altered)));
    }
    expect(decryptValue(KEY, CTX, formatEnvelope(e))).toBe(SECRET);
  });
});

describe('the envelope', () => {
  const good = encryptValue(KEY, CTX, SECRET);
  const [, iv, tag, ct] = good.split(':') as [string, string, string, string];

  it('parses into its parts and formats back to the same text', () => {
    const e = parseEnvelope(good);
    expect(e.version).toBe('v1');
    expect(e.iv).toHaveLength(12);
    expect(e.tag).toHaveLength(16);
    expect(e.ciphertext).toHaveLength(Buffer.byteLength(SECRET));
    expect(formatEnvelope(e)).toBe(good);
  });

  it.each([
    ['an unknown version', `v2:${iv}:${tag}:${ct}`, /does not start with "v1:"/],
    ['plain text', SECRET, /does not start with "v1:"/],
    ['too few parts', `v1:${iv}:${tag}`, /has 4 parts; this one has 3/],
    ['too many parts', `${good}:x`, /this one has 5/],
    ['a short IV', `v1:${iv.slice(0, 8)}:${tag}:${ct}`, /IV of the envelope is 6 bytes; it must be 12/],
    ['a short tag', `v1:${iv}:${tag.slice(0, 20)}:${ct}`, /tag of the envelope is 15 bytes; it must be 16/],
    [
      'a non-base64url part',
      `v1:${iv}:${tag}:${ct.slice(0, -1)}+`,
      /ciphertext of the envelope is not base64url/,
    ],
    ['a non-canonical part', `v1:${iv.slice(0, -1)}${iv.endsWith('A') ? 'B' : 'A'}x:${tag}:${ct}`, /IV/],
  ])('refuses %s, saying which part is wrong', (_what, text, message) => {
    expect(() => parseEnvelope(text)).toThrow(EnvelopeError);
    expect(() => parseEnvelope(text)).toThrow(message);
    const err = undecryptable(() => decryptValue(KEY, CTX, text));
    expect(err.message).toMatch(/stored form is damaged/);
    expect(err.message).not.toContain(SECRET);
  });
});
