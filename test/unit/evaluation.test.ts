import { describe, expect, it } from 'vitest';
import { planEvaluation } from '../../src/evaluation/plan.js';
import { decideProgrammatic, tallyOutput } from '../../src/evaluation/programmatic.js';
import { parseValidationReport } from '../../src/evaluation/report.js';
import { decideRubric, JudgeAnswerError, parseJudgeAnswer } from '../../src/evaluation/rubric.js';
import {
  objectiveOf,
  passThreshold,
  rubricCriteria,
  verificationScript,
} from '../../src/evaluation/runbook.js';
import { parseJudgeScript, SimulateJudgeError, scriptedAnswer } from '../../src/providers/simulated/judge.js';
import type { ProviderName } from '../../src/runtimes/types.js';

const PROGRAMMATIC_BODY = `# Brief — Agent Runbook

## Objective

Write a one-page brief.

## REQUIRED OUTPUT FILES (MANDATORY)

| File | Description |
|---|---|
| \`/app/results/brief.md\` | The brief |

## Step 1: Setup

\`\`\`bash
mkdir -p /app/results
\`\`\`

## Step 8: Final Checklist (MANDATORY — do not skip)

### Verification Script

\`\`\`bash
echo "=== FINAL OUTPUT VERIFICATION ==="
test -s /app/results/brief.md && echo "PASS: brief" || echo "FAIL: brief"
\`\`\`
`;

const RUBRIC_BODY = `# Poem

## Objective

Write a poem about the sea.
It must rhyme.

## Step 4: Evaluate Against Rubric

| # | Criterion | 5 (Excellent) | 3 (Acceptable) | 1 (Poor) |
|---|-----------|---------------|-----------------|----------|
| 1 | **Imagery** | vivid | some | none |
| 2 | Rhyme | every line | most lines | none |
| 3 | Length | 12-16 lines | 8-20 lines | other |

**Pass threshold: overall average >= 3.5, no individual criterion below 2.**
`;

describe('reading how a runbook is scored', () => {
  it('finds the verification script of the Final Checklist, not the setup block', () => {
    expect(verificationScript(PROGRAMMATIC_BODY)).toContain('=== FINAL OUTPUT VERIFICATION ===');
    expect(verificationScript(PROGRAMMATIC_BODY)).not.toContain('mkdir');
  });

  it('takes the first shell block of a Final Checklist without the marker, and none when there is no checklist', () => {
    const body = '## Final Checklist\n\n```sh\ntest -s /app/results/a.md\n```\n';
    expect(verificationScript(body)).toBe('test -s /app/results/a.md');
    expect(verificationScript('## Step 1\n\n```bash\nls\n```\n')).toBeNull();
  });

  it('reads the rubric table, its threshold and the objective', () => {
    const criteria = rubricCriteria(RUBRIC_BODY);
    expect(criteria.map((c) => [c.number, c.name, c.key])).toEqual([
      [1, 'Imagery', 'imagery'],
      [2, 'Rhyme', 'rhyme'],
      [3, 'Length', 'length'],
    ]);
    expect(criteria[0]!.levels).toEqual({ excellent: 'vivid', acceptable: 'some', poor: 'none' });
    expect(passThreshold(RUBRIC_BODY)).toEqual({ average: 3.5, min_criterion: 2 });
    expect(passThreshold('no words on it')).toEqual({ average: 4, min_criterion: 3 });
    expect(objectiveOf(RUBRIC_BODY)).toBe('Write a poem about the sea.\nIt must rhyme.');
  });
});

describe('programmatic decisions', () => {
  const spec = { verificationScript: 'x', requiredOutputs: [], resultsDir: '/app/results' };
  const run = (output: string, exit_code: number | null = 0, timed_out = false) => ({
    exit_code,
    timed_out,
    duration_ms: 5,
    output,
    stderr: '',
    truncated: false,
  });

  it('counts PASS, PARTIAL and FAIL lines', () => {
    const t = tallyOutput('=== X ===\nPASS: a (3 bytes)\n✅ b\nWARN: c thin\nFAIL: d is missing\nplain line');
    expect(t.results).toEqual({ pass: 2, partial: 1, fail: 1 });
    expect(t.stages.map((s) => s.passed)).toEqual([true, true, false, false]);
    expect(t.stages[3]!.name).toBe('d is missing');
  });

  it('fails on a FAIL line even when the script exits 0 (Jetty scripts do), and on a non-zero exit without one', () => {
    const failLine = decideProgrammatic(spec, run('PASS: a\nFAIL: b missing'), []);
    expect(failLine).toMatchObject({ passed: false, score: 0.5, source: 'verification_script' });
    const exit1 = decideProgrammatic(spec, run('PASS: a', 1), []);
    expect(exit1).toMatchObject({ passed: false, results: { pass: 1, partial: 0, fail: 1 } });
    expect(exit1.summary).toContain('exited with code 1');
    const timedOut = decideProgrammatic(spec, run('', null, true), []);
    expect(timedOut.passed).toBe(false);
    expect(timedOut.summary).toContain('EVALUATION_SCRIPT_TIMEOUT_SEC');
    expect(decideProgrammatic(spec, run('PASS: a\nPASS: b'), [])).toMatchObject({ passed: true, score: 1 });
  });

  it('checks the required files when there is no script, and is missing with neither', () => {
    const none = { verificationScript: null, requiredOutputs: [], resultsDir: '/app/results' };
    const files = decideProgrammatic(none, null, [
      { path: '/app/results/a.md', size: 10 },
      { path: '/app/results/b.md', size: 0 },
      { path: '/app/results/c.md', size: null },
    ]);
    expect(files).toMatchObject({ passed: false, source: 'required_outputs', results: { pass: 1, fail: 2 } });
    expect(files.summary).toContain('b.md, c.md');
    expect(decideProgrammatic(none, null, [])).toMatchObject({ status: 'missing', passed: null });
  });
});

describe('rubric decisions', () => {
  const criteria = rubricCriteria(RUBRIC_BODY);

  it('reads the judge answer by number or name, and refuses one that skips a criterion or scores out of range', () => {
    const text =
      '```json\n{"scores":[{"criterion":1,"score":5,"notes":"vivid"},{"criterion":"Rhyme","score":"4"},{"criterion":"length","score":3}]}\n```';
    const scores = parseJudgeAnswer(text, criteria);
    expect(Object.fromEntries(Object.entries(scores).map(([k, v]) => [k, v.score]))).toEqual({
      imagery: 5,
      rhyme: 4,
      length: 3,
    });
    expect(() => parseJudgeAnswer('{"scores":[{"criterion":1,"score":5}]}', criteria)).toThrow(
      /did not score criterion 2 \(Rhyme\)/,
    );
    expect(() => parseJudgeAnswer('{"scores":[{"criterion":1,"score":9}]}', criteria)).toThrow(
      JudgeAnswerError,
    );
    expect(() => parseJudgeAnswer('I think it is good', criteria)).toThrow(/without a JSON object/);
  });

  it('passes on the average and the minimum, and names what failed', () => {
    const score = (n: number, s: number) => ({ score: s, notes: '', name: `c${n}`, number: n });
    const t = { average: 4, min_criterion: 3 };
    expect(decideRubric({ a: score(1, 5), b: score(2, 4), c: score(3, 4) }, t)).toMatchObject({
      passed: true,
      score: 4.33,
    });
    const lowAverage = decideRubric({ a: score(1, 4), b: score(2, 3), c: score(3, 4) }, t);
    expect(lowAverage).toMatchObject({ passed: false, score: 3.67 });
    expect(lowAverage.summary).toContain('below 4');
    // Average 4.33 clears the bar, but one criterion is under its minimum.
    const oneLow = decideRubric({ a: score(1, 5), b: score(2, 5), c: score(3, 2) }, t);
    expect(oneLow).toMatchObject({ passed: false, score: 4 });
    expect(oneLow.summary).toContain('c3 scored 2 (below the minimum of 3)');
    expect(oneLow.results).toEqual({ pass: 2, partial: 0, fail: 1 });
  });
});

describe('the simulated judge script', () => {
  const criteria = rubricCriteria(RUBRIC_BODY);

  it('answers the scripted scores by number or name and leaves out the rest', () => {
    const script = parseJudgeScript('```simulate-judge\n1: 5 vivid\nrhyme: 2   # weak\n```\n');
    expect(JSON.parse(scriptedAnswer(script, criteria)).scores).toEqual([
      { criterion: 1, score: 5, notes: 'vivid' },
      { criterion: 2, score: 2, notes: 'Simulated judge: scripted 2.' },
    ]);
    expect(JSON.parse(scriptedAnswer(null, criteria)).scores.map((s: { score: number }) => s.score)).toEqual([
      4, 4, 4,
    ]);
  });

  it('refuses a malformed block naming the line', () => {
    expect(() => parseJudgeScript('x\n```simulate-judge\n1: 7\n```')).toThrow(
      /line 3: a score is a whole number from 1 to 5/,
    );
    expect(() => parseJudgeScript('```simulate-judge\nlooks good\n```')).toThrow(SimulateJudgeError);
    expect(parseJudgeScript('```simulate-judge\nfail: 503\n```')?.failStatus).toBe(503);
  });
});

describe('the agent report', () => {
  it('reads Jetty’s shape leniently and says why it could not', () => {
    const r = parseValidationReport(
      Buffer.from(
        JSON.stringify({
          overall_passed: true,
          results: { pass: 3, partial: 0, fail: 0 },
          stages: [{ name: 's', passed: true }],
        }),
      ),
      1000,
    );
    expect(r).toMatchObject({
      overall_passed: true,
      results: { pass: 3, partial: 0, fail: 0 },
      problem: null,
    });
    expect(parseValidationReport(Buffer.from('{nope'), 1000).problem).toContain('not valid JSON');
    expect(parseValidationReport(Buffer.alloc(2000), 1000).problem).toContain('EVALUATION_MAX_REPORT_BYTES');
    expect(parseValidationReport(null, 1000).problem).toContain('no validation_report.json');
  });
});

describe('planning an evaluation', () => {
  const base = {
    body: RUBRIC_BODY,
    resultsDir: '/app/results',
    requiredOutputs: ['/app/results/poem.md', '/app/results/summary.md'],
    primaryOutputs: [],
    defaults: { model: 'claude-sonnet-4-6', provider: undefined },
    frontmatterParam: 'messages[0].content.frontmatter',
  };
  const plan = (over: Partial<Parameters<typeof planEvaluation>[0]>) =>
    planEvaluation({
      ...base,
      frontmatter: { evaluation: 'rubric' },
      jetty: {},
      run: { model: 'gpt-5.5', provider: 'openai' },
      available: new Set<ProviderName>(['openai', 'anthropic']),
      ...over,
    });

  it('judges with the server default on its own provider, and skips summary.md', () => {
    const p = plan({});
    expect(p.spec?.judge).toEqual({ model: 'claude-sonnet-4-6', provider: 'anthropic', from: 'default' });
    expect(p.spec?.judgedOutputs).toEqual(['/app/results/poem.md']);
    expect(p.spec?.threshold).toEqual({ average: 3.5, min_criterion: 2 });
  });

  it('warns when the judge is the agent’s own model, and refuses a judge the collection cannot call', () => {
    const same = plan({ jetty: { judge_model: 'gpt-5.5' } });
    expect(same.spec?.judge).toMatchObject({ model: 'gpt-5.5', provider: 'openai', from: 'jetty' });
    expect(same.warnings.map((w) => w.code)).toEqual(['judge_is_agent_model']);
    expect(() => plan({ available: new Set<ProviderName>(['openai']) })).toThrow(/needs a key for anthropic/);
  });

  it('makes a simulated run’s judge simulated, and refuses require_pass without an evaluation', () => {
    const sim = plan({
      run: { model: 'claude-sonnet-4-6', provider: 'simulated' },
      available: new Set<ProviderName>(['simulated']),
    });
    expect(sim.spec?.judge?.provider).toBe('simulated');
    expect(() => plan({ frontmatter: {}, jetty: { require_pass: true } })).toThrow(/require_pass/);
    expect(plan({ frontmatter: {} }).spec).toBeNull();
  });
});
