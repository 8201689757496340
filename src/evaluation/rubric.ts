/**
 * How a rubric runbook is decided: a judge model scores the outputs against each criterion 1–5
 * with a short reason, and the run passes when the average reaches the threshold and no criterion
 * is below its minimum. This file builds the judge's prompt, reads its answer and applies the rule;
 * calling the judge is src/evaluation/judge-client.ts's.
 */
import { quoted } from '../errors.js';
import type { EvaluationStage, PassThreshold, RubricCriterion, RubricScore } from './types.js';

/** One file the judge reads: its text (cut), or a line saying why it has none. */
export interface JudgedFile {
  path: string;
  text: string | null;
  /** Why there is no text: missing, binary, cut. */
  note: string | null;
}

export const JUDGE_SYSTEM = [
  'You are an independent evaluator. You did not produce the work you are shown and have no stake in it.',
  'Score the work against each rubric criterion with a whole number from 1 to 5: 5 as the "5" column',
  'describes, 3 as the "3" column describes, 1 as the "1" column describes (4 and 2 in between).',
  'Judge only what the files show. Answer with JSON only, no prose around it, exactly in this form:',
  '{"scores": [{"criterion": <the criterion number>, "score": <1-5>, "notes": "<one sentence: why>"}]}',
  'with one entry per criterion.',
].join('\n');

export function judgePrompt(opts: {
  objective: string;
  criteria: RubricCriterion[];
  files: JudgedFile[];
}): string {
  const rows = opts.criteria.map(
    (c) => `| ${c.number} | ${c.name} | ${c.levels.excellent} | ${c.levels.acceptable} | ${c.levels.poor} |`,
  );
  const files = opts.files.map((f) => {
    const head = `### File: ${f.path}${f.note ? ` (${f.note})` : ''}`;
    return f.text === null ? head : `${head}\n\n<<<FILE\n${f.text}\nFILE>>>`;
  });
  return [
    '## The task',
    '',
    opts.objective || '(The runbook states no objective.)',
    '',
    '## Rubric',
    '',
    '| # | Criterion | 5 | 3 | 1 |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    '## The work',
    '',
    ...(files.length > 0 ? files : ['(No output files were produced.)']),
    '',
    'Score every criterion now, as JSON only.',
  ].join('\n');
}

export class JudgeAnswerError extends Error {}

/** The first JSON object in the text (the judge may wrap it in a code fence). */
function firstJsonObject(text: string): unknown {
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start < 0 || end <= start) throw new JudgeAnswerError('the judge answered without a JSON object');
  try {
    return JSON.parse(text.slice(start, end + 1));
  } catch {
    throw new JudgeAnswerError('the judge answered with JSON that does not parse');
  }
}

/** Reads the judge's answer into one score per criterion; throws JudgeAnswerError naming what is wrong. */
export function parseJudgeAnswer(text: string, criteria: RubricCriterion[]): Record<string, RubricScore> {
  const json = firstJsonObject(text) as { scores?: unknown };
  if (!Array.isArray(json.scores)) throw new JudgeAnswerError('the judge\'s JSON has no "scores" list');
  const out: Record<string, RubricScore> = {};
  for (const entry of json.scores.slice(0, 200)) {
    if (typeof entry !== 'object' || entry === null) continue;
    const e = entry as { criterion?: unknown; score?: unknown; notes?: unknown };
    const c = criteria.find((k) => matches(k, e.criterion));
    if (!c || out[c.key]) continue;
    const score = typeof e.score === 'string' ? Number(e.score) : e.score;
    if (typeof score !== 'number' || !Number.isInteger(score) || score < 1 || score > 5) {
      throw new JudgeAnswerError(
        `the judge scored criterion ${c.number} (${c.name}) ${quoted(e.score)}, not a whole number from 1 to 5`,
      );
    }
    const notes = typeof e.notes === 'string' ? e.notes.slice(0, 500) : '';
    out[c.key] = { score, notes, name: c.name, number: c.number };
  }
  const skipped = criteria.filter((c) => !out[c.key]);
  if (skipped.length > 0) {
    throw new JudgeAnswerError(
      `the judge did not score ${skipped.map((c) => `criterion ${c.number} (${c.name})`).join(', ')}`,
    );
  }
  return out;
}

function matches(c: RubricCriterion, ref: unknown): boolean {
  if (typeof ref === 'number') return ref === c.number;
  if (typeof ref !== 'string') return false;
  const r = ref.trim().toLowerCase();
  return r === String(c.number) || r === c.name.toLowerCase() || r === c.key;
}

export interface RubricDecision {
  passed: boolean;
  score: number;
  results: { pass: number; partial: number; fail: number };
  stages: EvaluationStage[];
  summary: string;
}

/** The threshold rule: average ≥ threshold.average and no criterion below threshold.min_criterion. */
export function decideRubric(scores: Record<string, RubricScore>, threshold: PassThreshold): RubricDecision {
  const all = Object.values(scores).sort((a, b) => a.number - b.number);
  const average = all.length === 0 ? 0 : all.reduce((s, x) => s + x.score, 0) / all.length;
  const score = Math.round(average * 100) / 100;
  const low = all.filter((x) => x.score < threshold.min_criterion);
  const passed = all.length > 0 && average >= threshold.average && low.length === 0;
  const results = { pass: 0, partial: 0, fail: 0 };
  const stages = all.map((x) => {
    const verdict =
      x.score < threshold.min_criterion ? 'fail' : x.score >= threshold.average ? 'pass' : 'partial';
    results[verdict] += 1;
    return {
      name: x.name,
      passed: verdict !== 'fail',
      message: `${x.score}/5${x.notes ? `: ${x.notes}` : ''}`,
    };
  });
  const why: string[] = [];
  if (average < threshold.average) why.push(`the average ${score} is below ${threshold.average}`);
  if (low.length > 0) {
    why.push(
      `${low.map((x) => `${x.name} scored ${x.score}`).join(', ')} (below the minimum of ${threshold.min_criterion})`,
    );
  }
  const summary = passed
    ? `The judge's average is ${score} (at least ${threshold.average}) and no criterion is below ${threshold.min_criterion}.`
    : `Not passed: ${why.join('; ') || 'no criterion was scored'}.`;
  return { passed, score, results, stages, summary };
}
