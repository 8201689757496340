/**
 * Generators of bad HTTP requests for the fuzz test, all drawn from one seeded PRNG so that a seed
 * gives the same requests again. Nothing here builds a URL with a scheme except loopback ones: a
 * generated webhook_url or upstream must never send traffic off this machine.
 */

export type Rand = () => number;

/** mulberry32: small, fast, and good enough to spread inputs. */
export function prng(seed: number): Rand {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const int = (r: Rand, n: number) => Math.floor(r() * n);
export const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;
export const chance = (r: Rand, p: number) => r() < p;

const ODD_STRINGS = [
  '',
  ' ',
  '\u0000',
  '\ud800',
  '\udfff\ud800',
  '😀'.repeat(50),
  '\u202eevil',
  'é\u0301',
  '\uffff\ufffe',
  'ＡＢＣ',
  '../../../../etc/passwd',
  '..%2f..%2f..%2fmaster.key',
  '%00',
  '..\\..\\windows',
  '%s%n%x',
  "' OR 1=1 --",
  '{{results_dir}}',
  '{{',
  '<script>alert(1)</script>',
  'null',
  'true',
  '-1',
  '1e309',
  'NaN',
  '__proto__',
  'constructor',
  'jrk_',
  'cancelled',
  'claude-code',
  'simulated',
];

/**
 * A string of a random kind: empty, odd unicode, traversal, injection, long (only when `big`, so
 * that one body holds one long string at most). Never contains ':'.
 */
export function junkString(r: Rand, big = true): string {
  switch (int(r, 6)) {
    case 0:
      return 'a'.repeat(big ? pick(r, [256, 4096, 70_000, 300_000]) : 256);
    case 1: {
      let s = '';
      const n = int(r, 40);
      for (let i = 0; i < n; i++) {
        const c = int(r, 0x2ffff);
        s += c === 0x3a || (c >= 0xd800 && c < 0xe000 && chance(r, 0.7)) ? 'x' : String.fromCodePoint(c);
      }
      return s;
    }
    default:
      return pick(r, ODD_STRINGS);
  }
}

const ODD_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '',
  ' ',
  'a'.repeat(500),
];

/** A JSON value of a random type, shallow unless `depth` allows more; only the outer level is big. */
export function junkValue(r: Rand, depth = 2, big = true): unknown {
  const kind = int(r, depth > 0 ? 9 : 6);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return chance(r, 0.5);
    case 2:
      return pick(r, [0, -1, 0.5, -0, 1e308, -1e308, 2 ** 53 + 1, 4294967296, 123456789012]);
    case 3:
    case 4:
    case 5:
      return junkString(r, big);
    case 6:
    case 7: {
      const o: Record<string, unknown> = {};
      const n = int(r, 5);
      for (let i = 0; i < n; i++) {
        o[chance(r, 0.3) ? pick(r, ODD_KEYS) : junkString(r, false).slice(0, 40)] = junkValue(
          r,
          depth - 1,
          false,
        );
      }
      return o;
    }
    default:
      return Array.from({ length: int(r, big ? pick(r, [3, 50, 2000]) : 5) }, () =>
        junkValue(r, depth - 1, false),
      );
  }
}

/** A copy of `valid` with one thing wrong: a field of another type, a field removed, or one added. */
export function mutate(r: Rand, valid: unknown): unknown {
  const copy = structuredClone(valid);
  const containers: Array<Record<string, unknown> | unknown[]> = [];
  const walk = (v: unknown) => {
    if (v && typeof v === 'object') {
      containers.push(v as Record<string, unknown>);
      for (const x of Object.values(v)) walk(x);
    }
  };
  walk(copy);
  if (containers.length === 0) return junkValue(r);
  const times = 1 + int(r, 3);
  for (let i = 0; i < times; i++) {
    const c = pick(r, containers);
    const keys = Object.keys(c);
    const what = int(r, 4);
    if (keys.length > 0 && what === 0) delete (c as Record<string, unknown>)[pick(r, keys)];
    else if (keys.length > 0 && what <= 2) (c as Record<string, unknown>)[pick(r, keys)] = junkValue(r);
    else (c as Record<string, unknown>)[junkString(r).slice(0, 30)] = junkValue(r);
  }
  return copy;
}

/** A JSON text nested `depth` deep, built as text (JSON.stringify overflows on such values). */
export function deepJson(r: Rand, depth: number): string {
  return chance(r, 0.5)
    ? `${'['.repeat(depth)}1${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}{}${'}'.repeat(depth)}`;
}

/** Bodies that are not JSON at all, or nearly. */
export const MALFORMED_JSON = [
  '{',
  '{"a":',
  '[1,2',
  'nul',
  '{"a":1,}',
  "{'a':1}",
  '\ufeff{"a":1}',
  '{"a":"\\u12"}',
  '"\\ud800"',
  '1'.repeat(400),
  '{"a":1}{"b":2}',
  '\u0000',
  '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}',
];

/** Adds prototype-pollution keys to a JSON object's text (JSON.stringify would not keep them). */
export function withPollution(text: string): string {
  if (!text.startsWith('{')) return text;
  const extra = '"__proto__":{"isAdmin":true,"collection":"other"},"constructor":{"prototype":{"x":1}}';
  return text === '{}' ? `{${extra}}` : `{${extra},${text.slice(1)}`;
}

export const ODD_CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/json; charset=utf-16',
  'application/json; charset=',
  'application/JSON',
  'application/json;;;',
  'application/xml',
  'multipart/form-data',
  'multipart/form-data; boundary=',
  'multipart/form-data; boundary="unterminated',
  '*/*',
  ';',
  `application/${'x'.repeat(2000)}`,
  'application/octet-stream',
];

export function badAuth(r: Rand, validKey: string): string | undefined {
  return pick(r, [
    undefined,
    '',
    'Bearer',
    'Bearer ',
    'Basic dXNlcjpwYXNz',
    `Bearer ${validKey.slice(0, -1)}x`,
    `Bearer ${validKey}${validKey}`,
    `bearer ${validKey.toUpperCase()}`,
    `Bearer jrk_${'A'.repeat(43)}`,
    `Bearer ${'x'.repeat(6000)}`,
    'Bearer \u00e9\u00e9',
    `Token ${validKey}`,
  ]);
}

/** Lone surrogates replaced, so that encodeURIComponent takes the string. */
const wellFormed = (s: string) =>
  s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');

/** A path segment that should find nothing, or try to escape. Already percent-encoded where needed. */
export function badSegment(r: Rand): string {
  return pick(r, [
    '..',
    '%2e%2e',
    '..%2f..%2f..%2fmaster.key',
    '%252e%252e%252f',
    '%00',
    '%zz',
    '%',
    'a'.repeat(pick(r, [65, 300, 5000])),
    encodeURIComponent('😀ünï'),
    encodeURIComponent('\u202e'),
    '%c0%ae%c0%ae',
    'run_does_not_exist',
    'x--y',
    '-',
    encodeURIComponent(wellFormed(junkString(r, false).slice(0, 200))) || 'x',
  ]);
}

/** A multipart body: well-formed with bad contents, or malformed itself. Returns type and bytes. */
export function multipartBody(
  r: Rand,
  fields: () => Record<string, string>,
): { contentType: string; body: Buffer } {
  const boundary = `----fuzz${int(r, 1e9)}`;
  const parts: string[] = [];
  const kind = int(r, 8);
  const fieldPart = (name: string, value: string) =>
    `--${boundary}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const filePart = (filename: string, data: string) =>
    `--${boundary}\r\ncontent-disposition: form-data; name="files"; filename="${filename}"\r\ncontent-type: application/octet-stream\r\n\r\n${data}\r\n`;
  for (const [k, v] of Object.entries(fields())) parts.push(fieldPart(k, v));
  if (kind === 0) for (let i = 0; i < pick(r, [30, 200, 1000]); i++) parts.push(fieldPart(`f${i}`, 'x'));
  if (kind === 1) for (let i = 0; i < pick(r, [5, 40]); i++) parts.push(filePart(`f${i}.txt`, 'hello'));
  if (kind === 2)
    parts.push(
      filePart(pick(r, ['../../etc/passwd', '', '..', 'a'.repeat(600), '\u0000x', '%2e%2e/x']), 'x'),
    );
  if (kind === 3) parts.push(filePart('big.bin', 'z'.repeat(pick(r, [70_000, 200_000]))));
  if (kind === 4) parts.push(`--${boundary}\r\nno-header-here\r\n\r\nvalue\r\n`);
  if (kind === 5) parts.push(filePart('a.zip', 'PK\u0003\u0004garbage-not-a-zip'));
  const closing = kind === 6 ? '' : `--${boundary}--\r\n`;
  let contentType = `multipart/form-data; boundary=${boundary}`;
  if (kind === 7)
    contentType = pick(r, [
      'multipart/form-data',
      'multipart/form-data; boundary=other',
      `multipart/mixed; boundary=${boundary}`,
    ]);
  return { contentType, body: Buffer.from(parts.join('') + closing, 'utf8') };
}
