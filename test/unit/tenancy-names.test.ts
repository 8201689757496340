import { describe, expect, it } from 'vitest';
import {
  assertCollectionName,
  COLLECTION_NAME_RE,
  collectionNameProblem,
  envNameProblem,
  isCollectionName,
} from '../../src/tenancy/names.js';
import { thrown } from '../support/errors.js';

const RULE_WORDS = /3–48 characters of letters, digits, "-" and "_"/;

describe('collection names (Jetty: 3–48 letters, digits, - and _, no edge or doubled separators)', () => {
  it('takes names that follow the rule', () => {
    for (const name of ['acme', 'abc', 'Team-Data_2', 'a1-b2_c3', '123', 'x'.repeat(48)]) {
      expect(collectionNameProblem(name), name).toBeNull();
      expect(COLLECTION_NAME_RE.test(name), name).toBe(true);
    }
  });

  it.each([
    ['ab', /has 2 characters/],
    ['x'.repeat(49), /has 49 characters/],
    ['', /has 0 characters/],
    ['acme corp', /contains " " at position 5/],
    ['acme/../x', /contains "\/" at position 5/],
    ['acme:env', /contains ":" at position 5/],
    ['café', /contains "é" at position 4/],
    ['-acme', /starts with a separator/],
    ['_acme', /starts with a separator/],
    ['acme-', /ends with a separator/],
    ['ac--me', /two separators in a row \("--"\)/],
    ['ac-_me', /two separators in a row \("-_"\)/],
  ])('refuses %j, naming what is wrong and the rule', (name, what) => {
    const problem = collectionNameProblem(name);
    expect(problem).toMatch(what);
    expect(problem).toMatch(RULE_WORDS);
    expect(COLLECTION_NAME_RE.test(name)).toBe(false);
    expect(isCollectionName(name)).toBe(false);
  });

  it('refuses what is not a string', () => {
    expect(collectionNameProblem(42)).toMatch(/must be a string/);
    expect(collectionNameProblem(undefined)).toMatch(RULE_WORDS);
  });

  it('assertCollectionName throws a 400 on the field named', () => {
    expect(assertCollectionName('acme')).toBe('acme');
    const err = thrown(() => assertCollectionName('a', 'collection'));
    expect(err.status).toBe(400);
    expect(err.param).toBe('collection');
    expect(err.code).toBe('invalid_collection_name');
    expect(err.message).toMatch(RULE_WORDS);
  });

  it('cuts a huge name short in the message', () => {
    const problem = collectionNameProblem('y'.repeat(10_000));
    expect(problem!.length).toBeLessThan(400);
  });
});

describe('environment variable names', () => {
  it('takes shell-style names', () => {
    for (const name of ['OPENAI_API_KEY', '_X', 'a1', 'AWS_BEARER_TOKEN_BEDROCK']) {
      expect(envNameProblem(name), name).toBeNull();
    }
  });

  it('refuses others, saying what names may be', () => {
    for (const name of ['1ABC', 'MY-KEY', 'A B', 'A=B', 'A:B', 'X'.repeat(129)]) {
      expect(envNameProblem(name), name).toMatch(/not a usable environment variable name.*letters, digits/);
    }
    expect(envNameProblem('')).toMatch(/cannot be empty/);
  });
});
