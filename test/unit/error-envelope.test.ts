import { describe, expect, it } from 'vitest';
import { AppError, badRequest, quoted } from '../../src/errors.js';
import { envelope, MAX_ERROR_MESSAGE_CHARS, MAX_ERROR_PARAM_CHARS } from '../../src/http/errors.js';

describe('request values in error messages', () => {
  it('quoted: a string as JSON, cut at the limit with an ellipsis', () => {
    expect(quoted('short')).toBe('"short"');
    expect(quoted('x'.repeat(100), 10)).toBe(`"${'x'.repeat(10)}…"`);
    expect(quoted('say "hi"')).toBe('"say \\"hi\\""');
  });

  it('quoted: anything else as its JSON, cut the same way; undefined still shows', () => {
    expect(quoted(3)).toBe('3');
    expect(quoted(null)).toBe('null');
    expect(quoted(undefined)).toBe('undefined');
    expect(quoted({ a: 'b'.repeat(100) }, 12)).toBe('{"a":"bbbbbb…');
  });

  it('the envelope caps a message and a param that grew from a huge request, and says how much it cut', () => {
    const long = badRequest(`bad: ${'m'.repeat(50_000)}`, `vars.${'p'.repeat(10_000)}`);
    const { error } = envelope(long);
    expect(error.message.length).toBeLessThan(MAX_ERROR_MESSAGE_CHARS + 40);
    expect(error.message).toMatch(/… \(48005 more characters\)$/);
    expect(error.param!.length).toBeLessThan(MAX_ERROR_PARAM_CHARS + 40);
    expect(error.param).toMatch(/^vars\.p+… \(9805 more characters\)$/);
  });

  it('an ordinary error passes unchanged, with its details beside it', () => {
    const e = new AppError('No such run.', {
      status: 404,
      type: 'not_found_error',
      code: 'run_not_found',
      details: { jetty_metadata: { run_id: 'r' } },
    });
    expect(envelope(e)).toEqual({
      jetty_metadata: { run_id: 'r' },
      error: { message: 'No such run.', type: 'not_found_error', param: null, code: 'run_not_found' },
    });
  });
});
