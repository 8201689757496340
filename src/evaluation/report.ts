/**
 * The agent's own `validation_report.json` (Jetty's shape: `stages[{name, passed, message}]`,
 * `results{pass, partial, fail}`, `overall_passed`, and for rubrics `rubric_scores{key: {score,
 * notes}}`, `overall_score`). Read leniently: it is recorded beside the server's decision, never
 * instead of it, so a field of the wrong type is simply left out.
 */
import type { AgentReport, EvaluationStage } from './types.js';

/** Stages and rubric scores kept from one report; the rest are counted in the last one's message. */
export const MAX_REPORT_ITEMS = 100;
const MAX_TEXT = 500;

export const REPORT_FILE = 'validation_report.json';

function text(v: unknown): string {
  if (typeof v !== 'string') return '';
  return v.length > MAX_TEXT ? `${v.slice(0, MAX_TEXT)}…` : v;
}

function count(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function missingReport(problem: string): AgentReport {
  return {
    overall_passed: null,
    results: null,
    overall_score: null,
    stages: [],
    rubric_scores: null,
    problem,
  };
}

/** `bytes`: the file's content, or null when the run left none. `maxBytes`: read no more than this. */
export function parseValidationReport(bytes: Buffer | null, maxBytes: number): AgentReport {
  if (bytes === null) return missingReport(`the run left no ${REPORT_FILE}`);
  if (bytes.length > maxBytes) {
    return missingReport(
      `${REPORT_FILE} has ${bytes.length} bytes, over EVALUATION_MAX_REPORT_BYTES (${maxBytes}); it was not read`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return missingReport(`${REPORT_FILE} is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(json)) return missingReport(`${REPORT_FILE} is not a JSON object`);
  return {
    overall_passed: typeof json.overall_passed === 'boolean' ? json.overall_passed : null,
    results: isObject(json.results)
      ? {
          pass: count(json.results.pass),
          partial: count(json.results.partial),
          fail: count(json.results.fail),
        }
      : null,
    overall_score:
      typeof json.overall_score === 'number' && Number.isFinite(json.overall_score)
        ? json.overall_score
        : null,
    stages: stagesOf(json.stages),
    rubric_scores: rubricOf(json.rubric_scores),
    problem: null,
  };
}

function stagesOf(v: unknown): EvaluationStage[] {
  if (!Array.isArray(v)) return [];
  const out: EvaluationStage[] = [];
  for (const s of v.slice(0, MAX_REPORT_ITEMS)) {
    if (!isObject(s)) continue;
    out.push({
      name: text(s.name) || `stage ${out.length + 1}`,
      passed: s.passed === true,
      message: text(s.message),
    });
  }
  if (v.length > MAX_REPORT_ITEMS) {
    out.push({ name: 'more', passed: false, message: `${v.length - MAX_REPORT_ITEMS} more stages not kept` });
  }
  return out;
}

function rubricOf(v: unknown): AgentReport['rubric_scores'] {
  if (!isObject(v)) return null;
  const out: Record<string, { score: number; notes: string }> = {};
  for (const [k, s] of Object.entries(v).slice(0, MAX_REPORT_ITEMS)) {
    const score = isObject(s) ? s.score : s;
    if (typeof score !== 'number' || !Number.isFinite(score)) continue;
    out[text(k)] = { score, notes: isObject(s) ? text(s.notes) : '' };
  }
  return out;
}
