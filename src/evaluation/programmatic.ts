/**
 * How a programmatic runbook is decided: by the server running its verification script (exit 0
 * and no `FAIL` line), else by its REQUIRED OUTPUT FILES (each one there and non-empty). Jetty's
 * scripts print a `PASS: …` or `FAIL: …` line per check and often exit 0 either way, so the lines
 * count as much as the exit code.
 */
import { posix } from 'node:path';
import type { EvaluationSpec, EvaluationStage, VerificationRun } from './types.js';

/** Check lines kept as stages; the rest are counted in the results only. */
export const MAX_STAGES = 100;

const LINE_RE =
  /^\s*(?:[-*>]\s*)?\[?(PASS(?:ED)?|OK|PARTIAL|WARN(?:ING)?|FAIL(?:ED|URE)?|ERROR)\]?\b\s*[:\-–—]?\s*(.*)$/i;
const MARK_RE = /^\s*(✅|✓|✔|❌|✗|✘|⚠️?)\s*(.*)$/u;

export interface Tally {
  results: { pass: number; partial: number; fail: number };
  stages: EvaluationStage[];
}

function verdictOf(word: string): 'pass' | 'partial' | 'fail' {
  const w = word.toUpperCase();
  if (w.startsWith('PASS') || w === 'OK' || w === '✅' || w === '✓' || w === '✔') return 'pass';
  if (w.startsWith('PARTIAL') || w.startsWith('WARN') || w.startsWith('⚠')) return 'partial';
  return 'fail';
}

/** The check lines of a verification script's output, counted. */
export function tallyOutput(output: string): Tally {
  const results = { pass: 0, partial: 0, fail: 0 };
  const stages: EvaluationStage[] = [];
  for (const line of output.split(/\r?\n/)) {
    const m = LINE_RE.exec(line) ?? MARK_RE.exec(line);
    if (!m) continue;
    const verdict = verdictOf(m[1]!);
    results[verdict] += 1;
    if (stages.length < MAX_STAGES) {
      const message = (m[2] ?? '').trim().slice(0, 300);
      stages.push({
        name: message || line.trim().slice(0, 300),
        passed: verdict === 'pass',
        message: line.trim().slice(0, 300),
      });
    }
  }
  return { results, stages };
}

export interface ProgrammaticDecision {
  status: 'scored' | 'missing';
  passed: boolean | null;
  score: number | null;
  results: Tally['results'];
  stages: EvaluationStage[];
  source: 'verification_script' | 'required_outputs' | 'none';
  summary: string;
}

/** A file the runbook requires, and its size in the stored artifacts (null: not there). */
export interface OutputCheck {
  path: string;
  size: number | null;
}

function scoreOf(r: Tally['results'], passed: boolean): number {
  const total = r.pass + r.partial + r.fail;
  if (total === 0) return passed ? 1 : 0;
  return Math.round(((r.pass + r.partial / 2) / total) * 1000) / 1000;
}

/** Decides from the script's run (when it ran) and the required files (otherwise, or on top on a re-grade). */
export function decideProgrammatic(
  spec: Pick<EvaluationSpec, 'verificationScript' | 'requiredOutputs' | 'resultsDir'>,
  script: VerificationRun | null,
  outputs: OutputCheck[],
  opts: { recheckOutputs?: boolean } = {},
): ProgrammaticDecision {
  if (script) return fromScript(script, opts.recheckOutputs ? outputs : [], spec.resultsDir);
  if (outputs.length > 0) return fromOutputs(outputs, spec.resultsDir);
  return {
    status: 'missing',
    passed: null,
    score: null,
    results: { pass: 0, partial: 0, fail: 0 },
    stages: [],
    source: 'none',
    summary:
      'The runbook declares `evaluation: programmatic` but has no verification script (a shell block in its Final Checklist) and no REQUIRED OUTPUT FILES table, so nothing could be checked.',
  };
}

function fromScript(
  script: VerificationRun,
  outputs: OutputCheck[],
  resultsDir: string,
): ProgrammaticDecision {
  const tally = tallyOutput(script.output);
  const { results, stages } = tally;
  const ended = script.timed_out
    ? 'did not finish within EVALUATION_SCRIPT_TIMEOUT_SEC'
    : script.exit_code === null
      ? 'was stopped'
      : `exited with code ${script.exit_code}`;
  const exitOk = !script.timed_out && script.exit_code === 0;
  if (!exitOk) {
    // A script that fails without a FAIL line still counts one failed check.
    if (results.fail === 0) results.fail += 1;
    stages.push({ name: 'verification script', passed: false, message: `The verification script ${ended}.` });
  }
  const files = fromOutputs(outputs, resultsDir);
  if (outputs.length > 0) {
    results.pass += files.results.pass;
    results.fail += files.results.fail;
    stages.push(...files.stages);
  }
  const passed = exitOk && results.fail === 0;
  const checks = results.pass + results.partial + results.fail;
  const summary = passed
    ? `The verification script passed: ${results.pass} of ${checks} checks passed${results.partial ? `, ${results.partial} partial` : ''}.`
    : `The verification script ${exitOk ? 'reported' : `${ended} and reported`} ${results.fail} failed check${results.fail === 1 ? '' : 's'} of ${checks}.`;
  return {
    status: 'scored',
    passed,
    score: scoreOf(results, passed),
    results,
    stages,
    source: 'verification_script',
    summary,
  };
}

function fromOutputs(outputs: OutputCheck[], resultsDir: string): ProgrammaticDecision {
  const results = { pass: 0, partial: 0, fail: 0 };
  const stages: EvaluationStage[] = [];
  for (const o of outputs) {
    const ok = o.size !== null && o.size > 0;
    results[ok ? 'pass' : 'fail'] += 1;
    if (stages.length >= MAX_STAGES) continue;
    const rel = posix.relative(resultsDir, o.path);
    const name = rel.startsWith('..') ? o.path : rel;
    const message =
      o.size === null
        ? `${name} is missing`
        : o.size === 0
          ? `${name} is empty`
          : `${name} (${o.size} bytes)`;
    stages.push({ name, passed: ok, message });
  }
  const passed = results.fail === 0;
  const missing = stages.filter((s) => !s.passed).map((s) => s.name);
  const summary = passed
    ? `All ${results.pass} required output files exist and are non-empty.`
    : `${results.fail} of ${outputs.length} required output files are missing or empty: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}.`;
  return {
    status: 'scored',
    passed,
    score: scoreOf(results, passed),
    results,
    stages,
    source: 'required_outputs',
    summary,
  };
}
