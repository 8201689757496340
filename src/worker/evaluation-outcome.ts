/**
 * What a run's evaluation changes about how it ends: the warnings it raises (a disagreement with
 * the agent's own report, an evaluation that could not be made), and, under `require_pass`, a
 * failed evaluation turning a completed run into a failed one (`evaluation_failed`).
 */
import type { Evaluation, EvaluationSpec } from '../evaluation/types.js';
import type { NewEvent, RunStatus, RunWarning } from '../events/types.js';

/** An evaluation that could not be made at all (the step itself failed): recorded as an error. */
export function failedEvaluation(spec: EvaluationSpec, why: string, number: number): Evaluation {
  return {
    kind: spec.kind,
    status: 'error',
    passed: null,
    score: null,
    max_score: spec.kind === 'rubric' ? 5 : 1,
    results: { pass: 0, partial: 0, fail: 0 },
    stages: [],
    rubric_scores: null,
    threshold: spec.kind === 'rubric' ? spec.threshold : null,
    source: 'none',
    summary: `The run could not be evaluated: ${why}`,
    verification: null,
    judge_model: spec.judge?.model ?? null,
    judge_provider: spec.judge?.provider ?? null,
    judge_usage: null,
    agent_report: null,
    disagreement: false,
    evaluated_at: new Date().toISOString(),
    duration_ms: 0,
    number,
    trigger: 'run',
  };
}

export function evaluationWarnings(e: Evaluation): RunWarning[] {
  const out: RunWarning[] = [];
  if (e.status === 'missing') out.push({ code: 'evaluation_missing', message: e.summary });
  if (e.status === 'error') {
    out.push({
      code: 'evaluation_error',
      message: `${e.summary} The run has no score; POST /v1/runs/{id}/evaluate grades it again from its stored files.`,
    });
  }
  if (e.disagreement) {
    const agent = e.agent_report?.overall_passed ? 'passed' : 'failed';
    const server = e.passed ? 'passed' : 'failed';
    out.push({
      code: 'evaluation_disagreement',
      message: `The agent's validation_report.json says overall_passed: ${e.agent_report?.overall_passed}, but the server's own check ${server} (${sourceText(e)}): ${e.summary} The server's result is the run's; the agent's report says it ${agent}.`,
    });
  }
  return out;
}

function sourceText(e: Evaluation): string {
  switch (e.source) {
    case 'verification_script':
      return "the runbook's verification script, run by the server";
    case 'required_outputs':
      return 'the REQUIRED OUTPUT FILES, checked by the server';
    case 'judge':
      return `the judge ${e.judge_model}`;
    default:
      return 'no check';
  }
}

/**
 * Under require_pass, a run that completed but whose evaluation did not pass (failed, missing or
 * in error: none of them shows it passed) ends failed with code evaluation_failed.
 */
export function applyRequirePass(
  spec: EvaluationSpec | null,
  evaluation: Evaluation | null,
  status: RunStatus,
  terminal: NewEvent,
): { status: RunStatus; terminal: NewEvent } {
  if (!spec?.requirePass || status !== 'completed' || terminal.type !== 'run.completed')
    return { status, terminal };
  if (evaluation?.passed === true) return { status, terminal };
  const why = evaluation
    ? evaluation.passed === false
      ? evaluation.summary
      : `its evaluation is ${evaluation.status}: ${evaluation.summary}`
    : 'it was not evaluated.';
  const { final_text, exit_code, usage, duration_ms } = terminal.data;
  return {
    status: 'failed',
    terminal: {
      type: 'run.failed',
      data: {
        error: {
          code: 'evaluation_failed',
          message: `The agent finished, but the run did not pass its evaluation and require_pass is set: ${why}`,
        },
        exit_code,
        final_text,
        usage,
        duration_ms,
        ...(evaluation ? { evaluation } : {}),
      },
    },
  };
}
