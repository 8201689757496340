/**
 * What a run's evaluation is planned from (the spec, carried in the run's job and input) and what
 * it records (the evaluation, on the run record). The spec is decided once, before the run is
 * queued; the worker, and any later re-grade, only follow it.
 */
import { z } from 'zod';
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

export type {
  AgentReport,
  Evaluation,
  EvaluationSource,
  EvaluationStage,
  EvaluationStatus,
  RubricScore,
  VerificationRun,
} from './record.js';

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
