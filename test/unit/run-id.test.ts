import { describe, expect, it } from 'vitest';
import { newRunId } from '../../src/queue/run-service.js';

describe('run ids', () => {
  it('are 16 hex digits and never read as an integer (BullMQ refuses such job ids)', () => {
    // About 1 random id in 1,850 is all decimal digits: 20,000 draws would meet ~10 of them.
    const ids = Array.from({ length: 20_000 }, () => newRunId());
    expect(ids.every((id) => /^[0-9a-f]{16}$/.test(id))).toBe(true);
    expect(ids.some((id) => /^\d+$/.test(id))).toBe(false);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
