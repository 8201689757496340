/**
 * A run's evaluation as its record, its events and its trajectory carry it. Types only, with no
 * imports above src/events: the event vocabulary (and the web page that reads it) refers to them.
 */
import type { UsageTotals } from '../events/types.js';

export interface PassThreshold {
  /** The average of the criteria's scores must be at least this. */
  average: number;
  /** No criterion may score below this. */
  min_criterion: number;
}

/** The agent's own `validation_report.json`, as far as it could be read. */
export interface AgentReport {
  /** The report's `overall_passed`, or null when it has none (or could not be read). */
  overall_passed: boolean | null;
  results: { pass: number; partial: number; fail: number } | null;
  overall_score: number | null;
  stages: EvaluationStage[];
  rubric_scores: Record<string, { score: number; notes: string }> | null;
  /** Why the report could not be read, when it could not (absent, too large, not JSON). */
  problem: string | null;
}

export interface EvaluationStage {
  name: string;
  passed: boolean;
  message: string;
}

export interface RubricScore {
  score: number;
  notes: string;
  name: string;
  number: number;
}

/** The verification script's run, as the server ran it. */
export interface VerificationRun {
  exit_code: number | null;
  timed_out: boolean;
  duration_ms: number;
  /** Its stdout (where the PASS/FAIL lines are), redacted, the first EVALUATION_MAX_OUTPUT_BYTES. */
  output: string;
  /** Its stderr, likewise. */
  stderr: string;
  truncated: boolean;
  /** true on a re-grade: the script ran in the run's sandbox, which is gone; this is that run. */
  carried_over?: boolean;
}

/**
 * `scored`: decided (passed is true or false). `missing`: the runbook declares an evaluation but
 * gives no way to score it (no verification script, no REQUIRED OUTPUT FILES; no rubric table).
 * `error`: scoring failed (the judge could not be reached or answered nonsense); passed is null.
 */
export type EvaluationStatus = 'scored' | 'missing' | 'error';

/** What decided `passed`. */
export type EvaluationSource = 'verification_script' | 'required_outputs' | 'judge' | 'none';

export interface Evaluation {
  kind: 'programmatic' | 'rubric';
  status: EvaluationStatus;
  passed: boolean | null;
  /**
   * programmatic: the share of checks that passed (a partial counts half), 0 to 1; rubric: the
   * average of the criteria's scores, 1 to 5. null when not scored.
   */
  score: number | null;
  max_score: number;
  results: { pass: number; partial: number; fail: number };
  stages: EvaluationStage[];
  rubric_scores: Record<string, RubricScore> | null;
  threshold: PassThreshold | null;
  source: EvaluationSource;
  /** One sentence: why it passed or not. */
  summary: string;
  verification: VerificationRun | null;
  judge_model: string | null;
  judge_provider: string | null;
  /** The judge's calls (their tokens and cost are in the run's usage too). */
  judge_usage: UsageTotals | null;
  agent_report: AgentReport | null;
  /** The agent's report says the opposite of what the server decided. */
  disagreement: boolean;
  evaluated_at: string;
  duration_ms: number;
  /** 1 for the evaluation made when the run ended, 2 for the first re-grade, ... */
  number: number;
  trigger: 'run' | 'regrade';
}
