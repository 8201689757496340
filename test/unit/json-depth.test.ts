import { describe, expect, it } from 'vitest';
import { jsonNestingDepth } from '../../src/json.js';

describe('jsonNestingDepth', () => {
  it('counts objects and arrays, not brackets inside strings or escaped quotes', () => {
    expect(jsonNestingDepth('1')).toBe(0);
    expect(jsonNestingDepth('{}')).toBe(1);
    expect(jsonNestingDepth('{"a":[{"b":[]}],"c":{}}')).toBe(4);
    expect(jsonNestingDepth('{"a":"[[[[{{{{"}')).toBe(1);
    expect(jsonNestingDepth('{"a\\"[[[":"\\\\","b":[1]}')).toBe(2);
  });

  it('measures 1,000,000 levels in one pass and stops once past the limit', () => {
    const deep = `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`;
    expect(jsonNestingDepth(deep)).toBe(1_000_000);
    expect(jsonNestingDepth(deep, 64)).toBe(65);
  });
});
