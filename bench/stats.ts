export interface Summary {
  n: number;
  p50: number;
  p95: number;
  min: number;
  max: number;
}

/**
 * Nearest-rank percentiles: every figure is one that was measured, never an interpolation, so
 * with 20 samples p95 is the second slowest.
 */
export function summarize(values: readonly number[]): Summary | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
  return { n: sorted.length, p50: rank(50), p95: rank(95), min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** Nearest-rank percentile `p` (0-100) of `values`; undefined when there are none. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}
