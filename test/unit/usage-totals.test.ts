import { describe, expect, it } from 'vitest';
import type { EventStreamStore } from '../../src/events/stream-store.js';
import type { UsageData } from '../../src/events/types.js';
import { estimateCost, formatUsd, priceOf } from '../../src/providers/prices.js';
import { RunEventSink } from '../../src/worker/run-events.js';

const store = { append: async () => '1-0' } as unknown as EventStreamStore;
const u = (over: Partial<UsageData>): UsageData => ({
  input_tokens: 0,
  output_tokens: 0,
  cache_read_tokens: 0,
  cache_write_tokens: 0,
  source: 'gateway',
  ...over,
});

describe('price table', () => {
  it('knows slugs in every provider form', () => {
    expect(priceOf('claude-sonnet-4-6')).toEqual(priceOf('anthropic/claude-sonnet-4.6'));
    expect(priceOf('us.anthropic.claude-sonnet-4-5-20250929-v1:0')?.input).toBe(3);
    expect(priceOf('gpt-5-mini')?.input).toBe(0.25);
    expect(priceOf('gpt-5.5')?.input).toBe(1.25);
    expect(priceOf('totally-unknown')).toBeUndefined();
  });

  it('estimates per million tokens', () => {
    expect(
      estimateCost(u({ model: 'claude-sonnet-4-6', input_tokens: 1_000_000, output_tokens: 100_000 })),
    ).toBe(4.5);
    expect(estimateCost(u({ model: 'mystery', input_tokens: 5 }))).toBeUndefined();
  });

  it('writes dollars so that a tiny budget still reads as its figure', () => {
    expect([0, 0.000001, 0.000042, 0.01, 0.5, 0.025992, 1.5, 25].map(formatUsd)).toEqual([
      '$0.00',
      '$0.000001',
      '$0.000042',
      '$0.01',
      '$0.50',
      '$0.025992',
      '$1.50',
      '$25.00',
    ]);
  });
});

describe('run usage totals', () => {
  it('tokens from the gateway, cost from the agent when it reports one', () => {
    const sink = new RunEventSink(store, 'r');
    sink.emit({
      type: 'usage',
      data: u({ input_tokens: 10, output_tokens: 2, cost_usd: 0.5, cost_estimated: true }),
    });
    sink.emit({
      type: 'usage',
      data: u({ input_tokens: 5, output_tokens: 1, cost_usd: 0.25, cost_estimated: true }),
    });
    sink.emit({
      type: 'usage',
      data: u({ source: 'agent', input_tokens: 99, output_tokens: 9, cost_usd: 0.1 }),
    });
    expect(sink.totals()).toEqual({
      input_tokens: 15,
      output_tokens: 3,
      cache_read_tokens: 0,
      cache_write_tokens: 0,
      cost_usd: 0.1,
      cost_estimated: false,
    });
  });

  it('an estimate, marked, when the agent reports no cost', () => {
    const sink = new RunEventSink(store, 'r');
    sink.emit({ type: 'usage', data: u({ input_tokens: 10, cost_usd: 0.5, cost_estimated: true }) });
    sink.emit({ type: 'usage', data: u({ source: 'agent', input_tokens: 10 }) });
    expect(sink.totals()).toMatchObject({ cost_usd: 0.5, cost_estimated: true });
  });

  it('the agent’s tokens when the gateway saw none, and no cost when nobody knows it', () => {
    const sink = new RunEventSink(store, 'r');
    sink.emit({ type: 'usage', data: u({ source: 'agent', input_tokens: 7, output_tokens: 3 }) });
    expect(sink.totals()).toMatchObject({
      input_tokens: 7,
      output_tokens: 3,
      cost_usd: null,
      cost_estimated: false,
    });
  });

  it('the runbook scripts’ own provider calls count on top of the agent’s, priced from the table', () => {
    const sink = new RunEventSink(store, 'r');
    sink.emit({
      type: 'usage',
      data: u({ input_tokens: 10, output_tokens: 2, cost_usd: 0.5, cost_estimated: true }),
    });
    sink.emit({ type: 'usage', data: u({ source: 'agent', input_tokens: 10, cost_usd: 0.1 }) });
    sink.emit({
      type: 'usage',
      data: u({ source: 'script', input_tokens: 4, output_tokens: 1, cost_usd: 0.25, cost_estimated: true }),
    });
    expect(sink.totals()).toEqual({
      input_tokens: 14,
      output_tokens: 3,
      cache_read_tokens: 0,
      cache_write_tokens: 0,
      cost_usd: 0.35,
      cost_estimated: true,
    });
  });

  it('remembers the warnings it emitted, in order', () => {
    const sink = new RunEventSink(store, 'r');
    sink.emit({ type: 'run.warning', data: { code: 'a', message: 'first' } });
    sink.emit({ type: 'log', data: { stream: 'system', line: 'x' } });
    sink.emit({ type: 'run.warning', data: { code: 'b', message: 'second' } });
    expect(sink.warnings().map((w) => w.code)).toEqual(['a', 'b']);
  });
});
