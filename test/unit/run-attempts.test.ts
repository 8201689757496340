import { describe, expect, it } from 'vitest';
import { ChunkMapper } from '../../src/events/chunk-mapper.js';
import type { EventStreamStore } from '../../src/events/stream-store.js';
import type { NewEvent, StoredEvent, UsageData } from '../../src/events/types.js';
import type { OutputParser } from '../../src/runtimes/types.js';
import { watchGatewayFailures } from '../../src/worker/gateway-failure.js';
import { RunEventSink } from '../../src/worker/run-events.js';
import { stalledIntervalFor } from '../../src/worker/run-worker.js';

// A run that starts again on another worker: its events say which attempt wrote them, the retry is
// announced to chat clients, and the totals count what every attempt spent.

const appended: Array<{ event: NewEvent; attempt: number | undefined }> = [];
const store = {
  append: async (_id: string, event: NewEvent, opts: { attempt?: number } = {}) => {
    appended.push({ event, attempt: opts.attempt });
    return '1-0';
  },
} as unknown as EventStreamStore;

const usage = (over: Partial<UsageData>): UsageData => ({
  input_tokens: 0,
  output_tokens: 0,
  cache_read_tokens: 0,
  cache_write_tokens: 0,
  source: 'gateway',
  ...over,
});
const stored = (attempt: number | undefined, data: UsageData): StoredEvent => ({
  id: '1-0',
  ts: 0,
  type: 'usage',
  data,
  ...(attempt === undefined ? {} : { attempt }),
});

describe('an attempt after the first', () => {
  it('marks every event it writes with its attempt number', async () => {
    appended.length = 0;
    const sink = new RunEventSink(store, 'r', { attempt: 2 });
    sink.emit({ type: 'agent.message', data: { text: 'hi' } });
    sink.emit({ type: 'usage', data: usage({ input_tokens: 1 }) });
    await sink.flush();
    expect(appended.map((a) => a.attempt)).toEqual([2, 2]);
  });

  it('totals the gateway usage of every attempt, and the cost of each by its own rule', async () => {
    const sink = new RunEventSink(store, 'r', { attempt: 2 });
    // Attempt 1 (killed mid-run): two model calls seen at the gateway, no agent report.
    sink.countEarlier([
      stored(1, usage({ input_tokens: 100, output_tokens: 10, cost_usd: 0.01, cost_estimated: true })),
      stored(1, usage({ input_tokens: 50, output_tokens: 5, cost_usd: 0.005, cost_estimated: true })),
      // Events of the current attempt already in the stream are not counted twice.
      stored(2, usage({ input_tokens: 999 })),
    ]);
    // Attempt 2: one call at the gateway, and the agent's own report with its cost.
    sink.emit({ type: 'usage', data: usage({ input_tokens: 70, output_tokens: 7, cost_usd: 0.007 }) });
    sink.emit({
      type: 'usage',
      data: usage({ source: 'agent', input_tokens: 70, output_tokens: 7, cost_usd: 0.02 }),
    });
    const t = sink.totals();
    expect(t.input_tokens).toBe(220);
    expect(t.output_tokens).toBe(22);
    // Attempt 1's estimate plus attempt 2's reported cost.
    expect(t.cost_usd).toBeCloseTo(0.035, 10);
    expect(t.cost_estimated).toBe(true);
  });

  it('counts events stored without an attempt (written before attempts were numbered) as attempt 1', () => {
    const sink = new RunEventSink(store, 'r', { attempt: 2 });
    sink.countEarlier([stored(undefined, usage({ output_tokens: 4 }))]);
    expect(sink.totals().output_tokens).toBe(4);
  });
});

describe('run.retry in the chat stream', () => {
  it('is a line of reasoning_content, and the chunk carries the attempt', () => {
    const mapper = new ChunkMapper({ runId: 'r1', model: 'm', created: 1 });
    const out = mapper.map({
      id: '5-0',
      ts: 0,
      attempt: 2,
      type: 'run.retry',
      data: {
        attempt: 2,
        reason: 'worker_lost',
        message: 'The worker of attempt 1 stopped holding the run.',
      },
    });
    expect(out.final).toBe(false);
    expect(out.chunks[0]!.choices[0]!.delta.reasoning_content).toBe(
      'Retrying, attempt 2: The worker of attempt 1 stopped holding the run.\n',
    );
    expect(out.chunks[0]!.jetty_event).toMatchObject({ type: 'run.retry', attempt: 2 });
  });
});

describe('a sandbox that cannot reach our gateway', () => {
  const failing = (): OutputParser => ({
    push: () => [],
    pushStderr: (line) => [{ type: 'log', data: { stream: 'stderr', line } }],
    finish: () => ({
      events: [],
      outcome: {
        status: 'failed',
        finalText: '',
        error: { code: 'provider_unreachable', message: 'The model provider could not be reached' },
      },
    }),
  });

  it('fails with gateway_unreachable, not as the provider being down', () => {
    const parser = watchGatewayFailures(failing());
    const events = parser.pushStderr!(
      'jetty-forwarder: cannot reach the gateway at /run/jetty/gateway.sock: ECONNREFUSED',
    );
    expect(events).toHaveLength(1);
    const { outcome } = parser.finish(1);
    expect(outcome.status).toBe('failed');
    if (outcome.status !== 'failed') return;
    expect(outcome.error.code).toBe('gateway_unreachable');
    expect(outcome.error.message).toContain('ECONNREFUSED');
    expect(outcome.error.message).toContain('not of the model provider');
  });

  it('leaves the provider blamed when the forwarder never complained', () => {
    const parser = watchGatewayFailures(failing());
    parser.pushStderr!('some other line');
    const { outcome } = parser.finish(1);
    expect(outcome.status === 'failed' && outcome.error.code).toBe('provider_unreachable');
  });
});

describe('stalled-job checks', () => {
  it('come often enough that a dead worker’s run moves on within its lock time plus 5 s', () => {
    for (const lockMs of [1_000, 3_000, 30_000, 600_000]) {
      const interval = stalledIntervalFor(lockMs);
      // A check must fall between the last lock renewal (every lockMs/2) and the expiry.
      expect(interval).toBeLessThan(lockMs / 2);
      // Leaves at least 3 s of the 5 s for taking the job and starting its sandbox.
      expect(interval).toBeLessThanOrEqual(2_000);
    }
  });
});
