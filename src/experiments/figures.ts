/**
 * An experiment's figures per variant, computed from its runs' records (never kept apart, so they
 * always say what the records say). Pure: the routes and the CLI's tests use the same functions.
 */
import type { Evaluation } from '../evaluation/record.js';
import type { UsageTotals } from '../events/types.js';

/** What a figure needs of a run record. */
export interface RunFacts {
  status: 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
  duration_ms: number | null;
  usage: UsageTotals;
  evaluation: Evaluation | null;
}

export interface VariantFigures {
  name: string;
  /** Runs of this variant (repeats). */
  runs: number;
  /** Runs that ended `completed` (the agent finished). */
  completed: number;
  /** Runs that ended in any way (completed, failed or cancelled). */
  ended: number;
  /** Runs whose evaluation passed. */
  passed: number;
  /** passed / the ended runs that were not cancelled; null before one ends. */
  pass_rate: number | null;
  /** The 95% Wilson score interval of pass_rate; null with it. */
  pass_rate_ci: [number, number] | null;
  /** The mean of the scored evaluations' scores (programmatic 0-1, rubric 1-5); null when none. */
  mean_score: number | null;
  median_duration_ms: number | null;
  mean_cost_usd: number | null;
  /** Input + output tokens of the ended runs, all together, and per run. */
  tokens: number;
  mean_tokens: number | null;
}

const Z95 = 1.959964;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

/** The Wilson score interval at 95%: sound for small n and for 0 or n successes, unlike p ± z·se. */
export function wilsonInterval(successes: number, n: number): [number, number] | null {
  if (n <= 0) return null;
  const p = successes / n;
  const z2 = Z95 * Z95;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (Z95 * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return [round(Math.max(0, centre - half), 4), round(Math.min(1, centre + half), 4)];
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function mean(xs: number[]): number | null {
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function variantFigures(name: string, runs: RunFacts[]): VariantFigures {
  const ended = runs.filter((r) => TERMINAL.has(r.status));
  // A cancelled run says nothing of the variant; a failed one counts as not passing.
  const graded = ended.filter((r) => r.status !== 'cancelled');
  const passed = graded.filter((r) => r.evaluation?.passed === true).length;
  const scores = graded.flatMap((r) =>
    r.evaluation?.status === 'scored' && r.evaluation.score !== null ? [r.evaluation.score] : [],
  );
  const durations = graded.flatMap((r) => (r.duration_ms === null ? [] : [r.duration_ms]));
  const costs = graded.flatMap((r) => (r.usage.cost_usd === null ? [] : [r.usage.cost_usd]));
  const tokens = graded.map((r) => r.usage.input_tokens + r.usage.output_tokens);
  const meanScore = mean(scores);
  const meanCost = mean(costs);
  const meanTokens = mean(tokens);
  return {
    name,
    runs: runs.length,
    completed: ended.filter((r) => r.status === 'completed').length,
    ended: ended.length,
    passed,
    pass_rate: graded.length ? round(passed / graded.length, 4) : null,
    pass_rate_ci: wilsonInterval(passed, graded.length),
    mean_score: meanScore === null ? null : round(meanScore, 3),
    median_duration_ms: median(durations),
    mean_cost_usd: meanCost === null ? null : round(meanCost, 6),
    tokens: tokens.reduce((a, b) => a + b, 0),
    mean_tokens: meanTokens === null ? null : round(meanTokens, 1),
  };
}
