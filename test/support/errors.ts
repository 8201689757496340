import { expect } from 'vitest';
import { AppError } from '../../src/errors.js';

/** Runs `fn`, expecting it to throw an AppError, and returns that error for closer checks. */
export function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected a throw');
}
