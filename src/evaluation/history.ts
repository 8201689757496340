/**
 * A run's evaluations over time: the one made when it ended, then each re-grade. The newest is the
 * current one; the history keeps the first and the newest ones up to EVALUATION_MAX_HISTORY. A
 * judge's usage is the run's too, so a re-grade adds it to the run's totals.
 */
import type { UsageTotals } from '../events/types.js';
import type { Evaluation } from './record.js';

export interface EvaluatedFields {
  evaluation: Evaluation;
  evaluations: Evaluation[];
  usage: UsageTotals;
}

export function withEvaluation(
  rec: { evaluation: Evaluation | null; evaluations?: Evaluation[]; usage: UsageTotals },
  next: Evaluation,
  maxHistory: number,
): EvaluatedFields {
  const before = rec.evaluations ?? (rec.evaluation ? [rec.evaluation] : []);
  let history = [...before, next];
  // The run's own evaluation stays; the oldest re-grades go first.
  if (history.length > maxHistory) history = [history[0]!, ...history.slice(history.length - maxHistory + 1)];
  return { evaluation: next, evaluations: history, usage: addUsage(rec.usage, next.judge_usage) };
}

function addUsage(u: UsageTotals, add: UsageTotals | null): UsageTotals {
  if (!add) return u;
  const cost = u.cost_usd === null && add.cost_usd === null ? null : (u.cost_usd ?? 0) + (add.cost_usd ?? 0);
  return {
    input_tokens: u.input_tokens + add.input_tokens,
    output_tokens: u.output_tokens + add.output_tokens,
    cache_read_tokens: u.cache_read_tokens + add.cache_read_tokens,
    cache_write_tokens: u.cache_write_tokens + add.cache_write_tokens,
    cost_usd: cost === null ? null : Math.round(cost * 1e6) / 1e6,
    cost_estimated: u.cost_estimated || add.cost_estimated,
  };
}
