/**
 * One evaluation of one run, in named phases: read the agent's own report, then decide by the
 * runbook's kind (programmatic: run the verification script or check the required files; rubric:
 * have the judge score the outputs). What it touches comes in as functions, so the same code runs
 * when the run ends (with its sandbox) and on a re-grade (stored artifacts only).
 */
import { posix } from 'node:path';
import { callJudgeSafely, type JudgeFn } from './judge-step.js';
import { decideProgrammatic, type OutputCheck } from './programmatic.js';
import { parseValidationReport, REPORT_FILE } from './report.js';
import { decideRubric, JUDGE_SYSTEM, type JudgedFile, judgePrompt } from './rubric.js';
import type { AgentReport, Evaluation, EvaluationSpec, VerificationRun } from './types.js';

export interface StoredArtifact {
  /** Relative to results_dir. */
  path: string;
  size: number;
  content_type: string;
}

export interface EvaluationLimits {
  /** validation_report.json is not read past this (EVALUATION_MAX_REPORT_BYTES). */
  maxReportBytes: number;
  /** Bytes of output files the judge is shown, all together (JUDGE_MAX_INPUT_BYTES). */
  judgeMaxInputBytes: number;
}

export interface EvaluationContext {
  spec: EvaluationSpec;
  artifacts: StoredArtifact[];
  /** A stored artifact's bytes (relative path), at most `max` of them; null when it is not stored. */
  readArtifact: (relPath: string, max: number) => Promise<Buffer | null>;
  /** Runs the verification script in the run's sandbox; null on a re-grade (the sandbox is gone). */
  runScript: ((script: string) => Promise<VerificationRun>) | null;
  judge: JudgeFn | null;
  /** The run's current evaluation (a re-grade carries its script run over). */
  previous: Evaluation | null;
  limits: EvaluationLimits;
  number: number;
  trigger: Evaluation['trigger'];
}

/** Everything but the judge's usage, which the caller measured at the gateway. */
export type EvaluationResult = Omit<Evaluation, 'judge_usage'>;

export async function evaluate(ctx: EvaluationContext): Promise<EvaluationResult> {
  const started = Date.now();
  const report = await readReport(ctx);
  const decided = ctx.spec.kind === 'programmatic' ? await programmatic(ctx) : await rubric(ctx);
  const disagreement =
    report.overall_passed !== null && decided.passed !== null && report.overall_passed !== decided.passed;
  return {
    ...decided,
    kind: ctx.spec.kind,
    agent_report: report,
    disagreement,
    evaluated_at: new Date().toISOString(),
    duration_ms: Date.now() - started,
    number: ctx.number,
    trigger: ctx.trigger,
  };
}

type Decided = Omit<
  EvaluationResult,
  'kind' | 'agent_report' | 'disagreement' | 'evaluated_at' | 'duration_ms' | 'number' | 'trigger'
>;

async function readReport(ctx: EvaluationContext): Promise<AgentReport> {
  const stored = ctx.artifacts.find((a) => a.path === REPORT_FILE);
  if (stored && stored.size > ctx.limits.maxReportBytes) {
    return parseValidationReport(Buffer.alloc(stored.size), ctx.limits.maxReportBytes);
  }
  const bytes = stored ? await ctx.readArtifact(REPORT_FILE, ctx.limits.maxReportBytes + 1) : null;
  return parseValidationReport(bytes, ctx.limits.maxReportBytes);
}

function outputChecks(ctx: EvaluationContext): OutputCheck[] {
  const sizes = new Map(ctx.artifacts.map((a) => [posix.join(ctx.spec.resultsDir, a.path), a.size]));
  return ctx.spec.requiredOutputs.map((p) => ({ path: p, size: sizes.get(p) ?? null }));
}

async function programmatic(ctx: EvaluationContext): Promise<Decided> {
  const { spec } = ctx;
  let script: VerificationRun | null = null;
  const regrade = ctx.runScript === null;
  if (spec.verificationScript !== null && ctx.runScript)
    script = await ctx.runScript(spec.verificationScript);
  else if (spec.verificationScript !== null && ctx.previous?.verification) {
    script = { ...ctx.previous.verification, carried_over: true };
  }
  const d = decideProgrammatic(spec, script, outputChecks(ctx), { recheckOutputs: regrade });
  return {
    status: d.status,
    passed: d.passed,
    score: d.score,
    max_score: 1,
    results: d.results,
    stages: d.stages,
    rubric_scores: null,
    threshold: null,
    source: d.source,
    summary: d.summary,
    verification: script,
    judge_model: null,
    judge_provider: null,
  };
}

function rubricBase(ctx: EvaluationContext): Decided {
  return {
    status: 'scored',
    passed: null,
    score: null,
    max_score: 5,
    results: { pass: 0, partial: 0, fail: 0 },
    stages: [],
    rubric_scores: null,
    threshold: ctx.spec.threshold,
    source: 'judge',
    summary: '',
    verification: null,
    judge_model: ctx.spec.judge?.model ?? null,
    judge_provider: ctx.spec.judge?.provider ?? null,
  };
}

async function rubric(ctx: EvaluationContext): Promise<Decided> {
  const base = rubricBase(ctx);
  const { spec } = ctx;
  if (spec.criteria.length === 0) {
    return {
      ...base,
      status: 'missing',
      source: 'none',
      summary:
        'The runbook declares `evaluation: rubric` but has no rubric table (`| # | Criterion | 5 | 3 | 1 |`), so there is nothing to score against.',
    };
  }
  const files = await judgedFiles(ctx);
  if (!files.some((f) => f.text !== null)) {
    return {
      ...base,
      passed: false,
      score: null,
      results: { pass: 0, partial: 0, fail: spec.criteria.length },
      summary:
        'Not passed: the run left none of the outputs the judge scores, so there was nothing to judge.',
    };
  }
  if (!ctx.judge) {
    return {
      ...base,
      status: 'error',
      source: 'none',
      summary: 'No judge was available to score the rubric.',
    };
  }
  const answer = await callJudgeSafely(
    ctx.judge,
    JUDGE_SYSTEM,
    judgePrompt({ objective: spec.objective, criteria: spec.criteria, files }),
    spec.criteria,
  );
  if ('error' in answer)
    return { ...base, status: 'error', summary: `The rubric could not be scored: ${answer.error}.` };
  const d = decideRubric(answer.scores, spec.threshold);
  return {
    ...base,
    passed: d.passed,
    score: d.score,
    results: d.results,
    stages: d.stages,
    rubric_scores: answer.scores,
    summary: d.summary,
  };
}

/** The files the judge reads, their text cut to what is left of judgeMaxInputBytes. */
async function judgedFiles(ctx: EvaluationContext): Promise<JudgedFile[]> {
  const { spec } = ctx;
  const byPath = new Map(ctx.artifacts.map((a) => [a.path, a]));
  const relOf = (abs: string) => posix.relative(spec.resultsDir, abs);
  let wanted = spec.judgedOutputs.map(relOf);
  if (wanted.length === 0) {
    wanted = ctx.artifacts.map((a) => a.path).filter((p) => p !== REPORT_FILE && p !== 'summary.md');
  }
  let budget = ctx.limits.judgeMaxInputBytes;
  const out: JudgedFile[] = [];
  for (const rel of wanted) {
    const a = byPath.get(rel);
    if (!a) {
      out.push({ path: rel, text: null, note: 'not produced' });
      continue;
    }
    if (budget <= 0) {
      out.push({ path: rel, text: null, note: `${a.size} bytes, not shown: JUDGE_MAX_INPUT_BYTES reached` });
      continue;
    }
    const bytes = await ctx.readArtifact(rel, Math.min(a.size, budget));
    if (!bytes) {
      out.push({ path: rel, text: null, note: 'not stored' });
      continue;
    }
    if (bytes.includes(0)) {
      out.push({ path: rel, text: null, note: `binary, ${a.size} bytes, ${a.content_type}` });
      continue;
    }
    budget -= bytes.length;
    const cut = bytes.length < a.size;
    out.push({
      path: rel,
      text: bytes.toString('utf8'),
      note: cut ? `cut to its first ${bytes.length} of ${a.size} bytes (JUDGE_MAX_INPUT_BYTES)` : null,
    });
  }
  return out;
}
