import { describe, expect, it } from 'vitest';
import { DEFAULT_RUN_LIMITS, type LimitHit, type RunLimits } from '../../src/events/limits.js';
import type { NewEvent } from '../../src/events/types.js';
import { claudeCodeAdapter } from '../../src/runtimes/claude-code.js';
import { codexAdapter } from '../../src/runtimes/codex.js';
import { geminiCliAdapter } from '../../src/runtimes/gemini-cli.js';
import { hermesAdapter } from '../../src/runtimes/hermes.js';
import { opencodeAdapter } from '../../src/runtimes/opencode.js';
import type { RuntimeAdapter } from '../../src/runtimes/types.js';
import { Redactor } from '../../src/tenancy/redact.js';
import { RunEventSink } from '../../src/worker/run-events.js';

/** What a sink stored, in order, through the one method it calls. */
class MemoryStream {
  readonly events: Array<NewEvent & { always: boolean }> = [];
  async append(_runId: string, event: NewEvent, opts: { always?: boolean } = {}): Promise<string> {
    this.events.push({ ...event, always: opts.always === true });
    return `${this.events.length}-0`;
  }
  get text(): string {
    return JSON.stringify(this.events);
  }
}

const SECRET = '@@canary@@0123456789abcdef';
/** Every start of the secret long enough to identify it. */
const prefixesOf = (v: string) => Array.from({ length: v.length - 3 }, (_, i) => v.slice(0, v.length - i));
const expectNoFragment = (text: string) => {
  for (const p of prefixesOf(SECRET)) expect(text.includes(p), `"${p}" survived`).toBe(false);
};

function sinkWith(limits: Partial<RunLimits> = {}, onLimit?: (hits: readonly LimitHit[]) => Promise<void>) {
  const stream = new MemoryStream();
  const sink = new RunEventSink(stream, 'run-1', { limits: { ...DEFAULT_RUN_LIMITS, ...limits }, onLimit });
  sink.addRedactions({ CANARY: SECRET });
  return { stream, sink };
}

// 16,370 x and then the secret: a 16 KiB cut lands 14 characters into it.
const STRADDLING = `${'x'.repeat(16_370)}${SECRET}`;

/** One stdout line per runtime carrying `output` as a tool's result, in that CLI's own form. */
const TOOL_RESULT_LINES: Array<[RuntimeAdapter, (output: string) => unknown[]]> = [
  [
    claudeCodeAdapter,
    (output) => [
      { type: 'user', message: { content: [{ type: 'tool_result', tool_use_id: 't1', content: output }] } },
    ],
  ],
  [
    codexAdapter,
    (output) => [
      {
        type: 'item.completed',
        item: {
          id: 'item_1',
          type: 'command_execution',
          command: 'x',
          aggregated_output: output,
          exit_code: 0,
          status: 'completed',
        },
      },
    ],
  ],
  [geminiCliAdapter, (output) => [{ type: 'tool_result', tool_id: 't1', status: 'success', output }]],
  [
    opencodeAdapter,
    (output) => [
      {
        type: 'tool_use',
        sessionID: 's1',
        part: { type: 'tool', tool: 'bash', callID: 'c1', state: { status: 'completed', input: {}, output } },
      },
    ],
  ],
  [
    hermesAdapter,
    (output) => [
      { hermes_event: 'post_tool_call', tool_name: 'terminal', tool_call_id: 'c1', result: output },
    ],
  ],
];

describe('redact, then cut', () => {
  it('a cut inside a value keeps none of it; a cut after redaction cuts the mark, never the value', () => {
    const r = new Redactor({ CANARY: SECRET });
    const cut = r.cut(STRADDLING, 16 * 1024);
    expect(cut.truncated).toBe(true);
    expect(cut.text).toBe(`${'x'.repeat(16_370)}[redacted:CANA`);
    expectNoFragment(cut.text);
    // Text already cut inside a value (as a line over the length limit is): its start goes.
    expect(r.dropPartialTail(`abc ${SECRET.slice(0, 9)}`)).toBe('abc ');
    expect(r.dropPartialTail(`abc ${SECRET.slice(0, 1)}`)).toBe('abc ');
    expect(r.dropPartialTail('abc @x')).toBe('abc @x');
    expect(r.dropPartialTail(`${SECRET} end`)).toBe(`${SECRET} end`);
  });

  it('never splits a character', () => {
    const cut = new Redactor({}).cut('€'.repeat(10), 8);
    expect(cut).toEqual({ text: '€€', truncated: true });
    expect(new Redactor({}).cut('short', 8)).toEqual({ text: 'short', truncated: false });
  });

  for (const [adapter, lines] of TOOL_RESULT_LINES) {
    it(`${adapter.name}: a tool result with a secret across the 16 KiB cut is stored cut, with no part of the secret`, async () => {
      const { stream, sink } = sinkWith();
      const parser = adapter.createParser();
      for (const line of lines(STRADDLING)) for (const ev of parser.push(JSON.stringify(line))) sink.emit(ev);
      await sink.flush();
      const result = stream.events.find((e) => e.type === 'tool.result');
      if (result?.type !== 'tool.result') throw new Error(`${adapter.name}: no tool.result stored`);
      expect(result.data.truncated).toBe(true);
      expect(Buffer.byteLength(result.data.output)).toBeLessThanOrEqual(16 * 1024);
      expect(result.data.output.startsWith('xxxx')).toBe(true);
      expectNoFragment(stream.text);
    });

    it(`${adapter.name}: a stderr line with a secret across the cut is a log event with no part of it`, async () => {
      const { stream, sink } = sinkWith();
      const parser = adapter.createParser();
      for (const ev of parser.pushStderr?.(STRADDLING) ?? []) sink.emit(ev);
      // And a non-JSON stdout line, which every parser turns into a log event too.
      for (const ev of parser.push(STRADDLING)) sink.emit(ev);
      await sink.flush();
      const logs = stream.events.filter((e) => e.type === 'log');
      expect(logs.length).toBeGreaterThan(0);
      for (const log of logs) expect(log.data).toMatchObject({ truncated: true });
      expectNoFragment(stream.text);
    });
  }
});

describe('the run event sink', () => {
  it('redacts every event it stores, keys and nested values included', async () => {
    const { stream, sink } = sinkWith();
    sink.emit({ type: 'agent.message', data: { text: `the key is ${SECRET}` } });
    sink.emit({
      type: 'tool.call',
      data: { call_id: 'c', name: 'sh', input: { [SECRET]: [`echo ${SECRET}`] } },
    });
    sink.emit({ type: 'log', data: { stream: 'stderr', line: SECRET } });
    await sink.flush();
    expect(stream.events).toHaveLength(3);
    expect(stream.text).toContain('the key is [redacted:CANARY]');
    expect(stream.text).not.toContain(SECRET);
  });

  it('cuts each kind of text to its limit and marks the event truncated', async () => {
    const { stream, sink } = sinkWith({ maxEventTextBytes: 1024, maxMessageBytes: 4096 });
    sink.emit({ type: 'agent.message', data: { text: 'm'.repeat(10_000) } });
    sink.emit({ type: 'agent.message', data: { text: 'short' } });
    const input = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, 'v']));
    sink.emit({ type: 'tool.call', data: { call_id: 'c', name: 'sh', input } });
    await sink.flush();
    const [long, short, call] = stream.events;
    expect(long?.data).toEqual({ text: 'm'.repeat(4096), truncated: true });
    expect(short?.data).toEqual({ text: 'short' });
    // Many small strings make a large input: it is kept as its cut JSON text.
    expect(call?.data).toMatchObject({ truncated: true });
    const cutInput = call?.type === 'tool.call' ? call.data.input : undefined;
    expect(typeof cutInput).toBe('string');
    expect(Buffer.byteLength(String(cutInput))).toBeLessThanOrEqual(1024);
  });

  it('stores at most RUN_MAX_EVENTS events, says so once, still counts usage and stores the end', async () => {
    const hits: LimitHit[][] = [];
    const { stream, sink } = sinkWith({ maxEvents: 10 }, async (h) => {
      hits.push([...h]);
    });
    for (let i = 0; i < 1000; i++) sink.emit({ type: 'log', data: { stream: 'stderr', line: `line ${i}` } });
    sink.emit({
      type: 'usage',
      data: {
        input_tokens: 7,
        output_tokens: 3,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        source: 'gateway',
      },
    });
    sink.emit({ type: 'run.started', data: { sandbox_id: 's', image: 'i', runtime_version: 'v' } });
    await sink.flush();
    const end = sink.shape({
      type: 'run.completed',
      data: { final_text: 'done', exit_code: 0, usage: sink.totals(), duration_ms: 1 },
    });
    sink.emit(end);
    await sink.flush();
    expect(stream.events.filter((e) => e.type === 'log')).toHaveLength(10);
    const notices = stream.events.filter((e) => e.type === 'run.warning');
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ always: true, data: { code: 'output_limit' } });
    expect(JSON.stringify(notices[0])).toContain('RUN_MAX_EVENTS');
    expect(stream.events.at(-1)).toMatchObject({ type: 'run.completed', always: true });
    expect(sink.totals().input_tokens).toBe(7);
    expect(sink.limitsHit).toEqual(['max_events']);
    expect(hits).toEqual([['max_events']]);
  });

  it('stores at most RUN_MAX_STREAM_BYTES of event data, and says so once', async () => {
    const { stream, sink } = sinkWith({ maxStreamBytes: 64 * 1024 });
    for (let i = 0; i < 100; i++)
      sink.emit({ type: 'log', data: { stream: 'stderr', line: 'y'.repeat(8000) } });
    await sink.flush();
    const logs = stream.events.filter((e) => e.type === 'log');
    const stored = logs.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e.data)), 0);
    expect(logs.length).toBe(8);
    expect(stored).toBeLessThanOrEqual(64 * 1024);
    expect(stream.events.filter((e) => e.type === 'run.warning')).toHaveLength(1);
    expect(sink.limitsHit).toEqual(['max_stream_bytes']);
  });

  it('a cut line is said once, and the run goes on storing events', async () => {
    const { stream, sink } = sinkWith();
    sink.lineCut();
    sink.emit({ type: 'log', data: { stream: 'stderr', line: 'after' } });
    sink.lineCut();
    await sink.flush();
    expect(stream.events.map((e) => e.type)).toEqual(['run.warning', 'log']);
    expect(JSON.stringify(stream.events[0])).toContain('RUN_MAX_LINE_BYTES');
    expect(sink.limitsHit).toEqual(['max_line_bytes']);
  });

  it('a stream that refuses an append (its cap) closes the run to more events, with one notice', async () => {
    const events: Array<{ type: string; always: boolean }> = [];
    const capped = {
      async append(_r: string, ev: NewEvent, opts: { always?: boolean } = {}) {
        if (!opts.always && events.length >= 2) return null;
        events.push({ type: ev.type, always: opts.always === true });
        return `${events.length}-0`;
      },
    };
    const sink = new RunEventSink(capped, 'run-1');
    for (let i = 0; i < 5; i++) sink.emit({ type: 'log', data: { stream: 'stderr', line: `l${i}` } });
    await sink.flush();
    sink.emit({ type: 'log', data: { stream: 'stderr', line: 'later' } });
    await sink.flush();
    expect(events).toEqual([
      { type: 'log', always: false },
      { type: 'log', always: false },
      { type: 'run.warning', always: true },
    ]);
    expect(sink.limitsHit).toEqual(['max_events']);
  });
});
