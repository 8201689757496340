import { describe, expect, it } from 'vitest';
import { parseVariant, table } from '../../src/cli/commands/ab.js';
import { median, type RunFacts, variantFigures, wilsonInterval } from '../../src/experiments/figures.js';

const usage = (i: number, o: number, cost: number | null) => ({
  input_tokens: i,
  output_tokens: o,
  cache_read_tokens: 0,
  cache_write_tokens: 0,
  cost_usd: cost,
  cost_estimated: false,
});
const run = (
  status: RunFacts['status'],
  passed: boolean | null,
  extra: Partial<RunFacts> = {},
): RunFacts => ({
  status,
  duration_ms: 1000,
  usage: usage(10, 5, 0.01),
  evaluation:
    passed === null
      ? null
      : ({ status: 'scored', passed, score: passed ? 1 : 0.5 } as RunFacts['evaluation']),
  ...extra,
});

describe('experiment figures', () => {
  it('gives the 95% Wilson interval, sound at 0 and n successes', () => {
    expect(wilsonInterval(3, 3)).toEqual([0.4385, 1]);
    expect(wilsonInterval(0, 3)).toEqual([0, 0.5615]);
    expect(wilsonInterval(5, 10)).toEqual([0.2366, 0.7634]);
    expect(wilsonInterval(0, 0)).toBeNull();
  });

  it('takes the median of odd and even counts', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNull();
  });

  it('counts a failed run as not passing and leaves cancelled and unfinished runs out of the rates', () => {
    const f = variantFigures('v', [
      run('completed', true, { duration_ms: 3000, usage: usage(100, 20, 0.02) }),
      run('failed', false, { duration_ms: 1000, usage: usage(50, 10, null) }),
      run('cancelled', null),
      run('running', null),
    ]);
    expect(f).toMatchObject({
      runs: 4,
      completed: 1,
      ended: 3,
      passed: 1,
      pass_rate: 0.5,
      pass_rate_ci: wilsonInterval(1, 2),
      mean_score: 0.75,
      median_duration_ms: 2000,
      mean_cost_usd: 0.02,
      tokens: 180,
      mean_tokens: 90,
    });
  });

  it('draws the CLI table from the figures', () => {
    const lines = table({
      id: 'exp_1',
      status: 'completed',
      grader: { kind: 'programmatic', judge_model: null, judge_provider: null },
      variants: [{ ...variantFigures('codex', [run('completed', true)]), runs: 1 }],
    });
    expect(lines[0]).toMatch(/^variant\s+ended\s+passed\s+pass rate \(95% CI\)/);
    expect(lines[2]).toMatch(/^codex\s+1\/1\s+1\s+100% \[21%, 100%\]\s+1\s+1\.0s\s+\$0\.0100\s+15$/);
  });
});

describe('jetty ab --variant', () => {
  it('reads AGENT, AGENT:MODEL and AGENT:MODEL@PROVIDER, and refuses anything else as a usage error', () => {
    expect(parseVariant('claude-code')).toEqual({ name: 'claude-code', agent: 'claude-code' });
    expect(parseVariant('codex:gpt-5.5')).toEqual({
      name: 'codex:gpt-5.5',
      agent: 'codex',
      model: 'gpt-5.5',
    });
    expect(parseVariant('opencode:anthropic/claude-sonnet-4.6@openrouter')).toEqual({
      name: 'opencode:anthropic/claude-sonnet-4.6@openrouter',
      agent: 'opencode',
      model: 'anthropic/claude-sonnet-4.6',
      model_provider: 'openrouter',
    });
    expect(() => parseVariant('Codex gpt')).toThrow(/--variant takes AGENT/);
  });
});
