import { z } from 'zod';

/** A whole-number setting from `min` to `max`, `def` when unset; out of range names the range and the value. */
export const int = (def: number, min: number, max: number) =>
  z
    .string()
    .default(String(def))
    .transform((v, ctx) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number from ${min} to ${max}; got "${v}"` });
        return z.NEVER;
      }
      return n;
    });
