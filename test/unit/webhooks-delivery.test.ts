import { describe, expect, it } from 'vitest';
import { classifyStatus } from '../../src/webhooks/deliver.js';

describe('what a receiver answer means for a webhook delivery', () => {
  it('a 2xx is delivered', () => {
    for (const s of [200, 201, 202, 204]) expect(classifyStatus(s)).toEqual({ ok: true, final: true });
  });
  it('a 4xx is final, except 408 and 429, which are tried again', () => {
    for (const s of [400, 401, 403, 404, 410, 413, 422])
      expect(classifyStatus(s), String(s)).toEqual({ ok: false, final: true });
    for (const s of [408, 429]) expect(classifyStatus(s), String(s)).toEqual({ ok: false, final: false });
  });
  it('a 5xx or a redirect is tried again', () => {
    for (const s of [500, 502, 503, 504, 301, 302, 307])
      expect(classifyStatus(s), String(s)).toEqual({ ok: false, final: false });
  });
});
