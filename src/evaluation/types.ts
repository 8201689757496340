/**
 * What a run's evaluation is planned from (the spec, carried in the run's job and input) and what
 * it records (the evaluation, on the run record). The spec is decided once, before the run is
 * queued; the worker, and any later re-grade, only follow it.
 */
import { z } from 'zod';
import type { UsageTotals } from '../events/types.js';
import { PROVIDER_NAMES, type ProviderName } from '../runtimes/types.js';

/** The providers a judge can be called on (the wire protocols src/evaluation/judge-client.ts speaks). */
export const JUDGE_PROVIDERS: readonly ProviderName[] = [
  'anthropic',
  'openai',
  'openrouter',
  'google',
  'simulated',
];

export const rubricCriterionSchema = z.object({
  /** The `#` column (1, 2, ...), or the row's position when the table has none. */
  number: z.number().int().positive(),
  name: z.string(),
  /** The name lower-cased with every run of other characters made `-`: the key in rubric_scores. */
  key: z.string(),
  /** What a 5, a 3 and a 1 look like, as the table says. */
  levels: z.object({ excellent: z.string(), acceptable: z.string(), poor: z.string() }),
});
export type RubricCriterion = z.infer<typeof rubricCriterionSchema>;

export const thresholdSchema = z.object({
  /** The average of the criteria's scores must be at least this. */
  average: z.number().min(1).max(5),
  /** No criterion may score below this. */
  min_criterion: z.number().int().min(1).max(5),
});
export type PassThreshold = z.infer<typeof thresholdSchema>;

export const DEFAULT_THRESHOLD: PassThreshold = { average: 4, min_criterion: 3 };

export const judgeSpecSchema = z.object({
  model: z.string().min(1),
  provider: z.enum(PROVIDER_NAMES as [ProviderName, ...ProviderName[]]),
  /** Where the judge came from, for the record: jetty, frontmatter, or the server's default. */
  from: z.enum(['jetty', 'frontmatter', 'default', 'experiment', 'regrade']),
});
export type JudgeSpec = z.infer<typeof judgeSpecSchema>;

export const evaluationSpecSchema = z.object({
  kind: z.enum(['programmatic', 'rubric']),
  /** The Final Checklist's verification script (templated), or null when the runbook has none. */
  verificationScript: z.string().nullable(),
  /** Absolute paths the REQUIRED OUTPUT FILES table lists. */
  requiredOutputs: z.array(z.string()),
  /** What the judge reads first: primary_outputs (absolute), else the required outputs. */
  judgedOutputs: z.array(z.string()),
  /** The runbook's Objective, for the judge (cut to a few thousand characters). */
  objective: z.string(),
  criteria: z.array(rubricCriterionSchema),
  threshold: thresholdSchema,
  judge: judgeSpecSchema.nullable(),
  requirePass: z.boolean(),
  resultsDir: z.string(),
});
export type EvaluationSpec = z.infer<typeof evaluationSpecSchema>;

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
  judge_provider: ProviderName | null;
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
