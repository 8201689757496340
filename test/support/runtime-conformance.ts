/**
 * The contract every RuntimeAdapter meets, checked on recorded CLI output. Each runtime's test file
 * calls `runConformance(adapter, fixtures)` with its own recordings.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AGENT_NAMES, type AgentEvent } from '../../src/events/types.js';
import {
  type InvocationSpec,
  type OutputParser,
  PROVIDER_NAMES,
  type RuntimeAdapter,
  type RuntimeOutcome,
} from '../../src/runtimes/types.js';

/** One recorded run of a CLI: its stdout lines and how it exited. */
export interface RecordedRun {
  name: string;
  lines: string[];
  /** The exit code seen when it was recorded; null when the process was killed. */
  exitCode: number | null;
}

export interface ProviderErrorRun extends RecordedRun {
  /** The HTTP status the provider answered with. */
  httpStatus: number;
}

export interface ConformanceFixtures {
  /** A run that finished its task. */
  success: RecordedRun;
  /** A run with at least one tool call and its result. */
  toolUse: RecordedRun;
  /** A run that failed because the provider answered with an HTTP error. */
  providerError: ProviderErrorRun;
  /** A run whose process died before it reported a result. */
  crash: RecordedRun;
  /** A run with at least one stdout line longer than 64 KiB. */
  longLine: RecordedRun;
}

const LONG_LINE_BYTES = 64 * 1024;

/** Reads a .jsonl recording; the last newline does not make an extra empty line. */
export function loadRecording(path: string | URL, exitCode: number | null): RecordedRun {
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return { name: String(path).split('/').at(-1) ?? String(path), lines, exitCode };
}

export interface Replay {
  /** Events from push(), in order. */
  events: AgentEvent[];
  /** Events from finish(). */
  finishEvents: AgentEvent[];
  outcome: RuntimeOutcome;
}

/** Feeds a recording through a fresh parser, the way the worker does. */
export function replay(adapter: RuntimeAdapter, run: RecordedRun, exitCode = run.exitCode): Replay {
  const parser = adapter.createParser();
  const events = run.lines.flatMap((line) => parser.push(line));
  const { events: finishEvents, outcome } = parser.finish(exitCode);
  return { events, finishEvents, outcome };
}

export function ofType<T extends AgentEvent['type']>(
  events: AgentEvent[],
  type: T,
): Extract<AgentEvent, { type: T }>[] {
  return events.filter((e): e is Extract<AgentEvent, { type: T }> => e.type === type);
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/** Throws (through expect) unless `event` is one the rest of the server can store and stream. */
export function expectValidEvent(event: AgentEvent): void {
  const where = JSON.stringify(event).slice(0, 300);
  switch (event.type) {
    case 'agent.message':
    case 'agent.reasoning':
      expect(typeof event.data.text, where).toBe('string');
      break;
    case 'tool.call':
      expect(typeof event.data.call_id === 'string' && event.data.call_id !== '', where).toBe(true);
      expect(typeof event.data.name === 'string' && event.data.name !== '', where).toBe(true);
      expect(event.data.input, where).not.toBeUndefined();
      break;
    case 'tool.result':
      expect(typeof event.data.call_id === 'string' && event.data.call_id !== '', where).toBe(true);
      expect(typeof event.data.output, where).toBe('string');
      expect(typeof event.data.is_error, where).toBe('boolean');
      if (event.data.truncated !== undefined) expect(typeof event.data.truncated, where).toBe('boolean');
      break;
    case 'usage':
      for (const key of [
        'input_tokens',
        'output_tokens',
        'cache_read_tokens',
        'cache_write_tokens',
      ] as const) {
        expect(isCount(event.data[key]), `${key} in ${where}`).toBe(true);
      }
      if (event.data.cost_usd !== undefined) expect(isCount(event.data.cost_usd), where).toBe(true);
      if (event.data.model !== undefined) expect(typeof event.data.model, where).toBe('string');
      expect(['agent', 'gateway'], where).toContain(event.data.source);
      break;
    case 'log':
      expect(['stderr', 'system'], where).toContain(event.data.stream);
      expect(typeof event.data.line, where).toBe('string');
      break;
    default: {
      const unknown: never = event;
      expect.fail(`unknown event type: ${JSON.stringify(unknown).slice(0, 200)}`);
    }
  }
  // Everything goes through JSON (Redis, SSE): it must survive the trip.
  expect(JSON.parse(JSON.stringify(event)), where).toEqual(event);
}

export function expectValidOutcome(outcome: RuntimeOutcome): void {
  expect(['completed', 'failed']).toContain(outcome.status);
  expect(typeof outcome.finalText).toBe('string');
  if (outcome.status === 'failed') {
    expect(outcome.error.code).toMatch(/^[a-z][a-z0-9_]*$/);
    expect(outcome.error.message.trim()).not.toBe('');
  }
}

/** A small seeded generator, so a failing garbage case can be reproduced. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ODD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1e308,
  '',
  'x',
  [],
  {},
  [null],
  { type: 1 },
  '\u0000',
  'NaN',
];

/** Replaces one value somewhere inside `value` by an odd one (wrong type, empty, huge). */
function mutate(value: unknown, rand: () => number, depth = 0): unknown {
  const pick = () => ODD_VALUES[Math.floor(rand() * ODD_VALUES.length)];
  if (depth > 6 || value === null || typeof value !== 'object' || rand() < 0.15) return pick();
  if (Array.isArray(value)) {
    if (value.length === 0) return [pick()];
    const copy = [...value];
    const i = Math.floor(rand() * copy.length);
    copy[i] = mutate(copy[i], rand, depth + 1);
    return copy;
  }
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  const keys = Object.keys(copy);
  if (keys.length === 0) return pick();
  const key = keys[Math.floor(rand() * keys.length)] ?? '';
  if (rand() < 0.2) delete copy[key];
  else copy[key] = mutate(copy[key], rand, depth + 1);
  return copy;
}

/** Lines no CLI should print, but a broken or future one might. */
export function garbageLines(samples: string[], count: number, seed = 42): string[] {
  const rand = prng(seed);
  const out: string[] = [
    '',
    ' ',
    'null',
    '[]',
    '"a string"',
    '42',
    '{',
    '}{',
    '{"type":null}',
    '{"type":"assistant"}',
    '{"type":"assistant","message":null}',
    '{"type":"assistant","message":{"content":"not an array"}}',
    '{"type":"user","message":{"content":[{"type":"tool_result"}]}}',
    '{"type":"result"}',
    '{"type":"result","usage":"lots","modelUsage":[1,2]}',
    '{"type":"system","subtype":"api_retry","attempt":"one"}',
    '{"__proto__":{"polluted":true},"type":"result"}',
    '\u0000\u0001\u0002',
    '\uD800 lone surrogate',
    'x'.repeat(200 * 1024),
  ];
  const usable = samples.filter((s) => s.trim() !== '');
  while (out.length < count) {
    const r = rand();
    const sample = usable[Math.floor(rand() * usable.length)] ?? '{}';
    if (r < 0.3) {
      out.push(sample.slice(0, Math.floor(rand() * sample.length)));
    } else if (r < 0.8) {
      try {
        out.push(JSON.stringify(mutate(JSON.parse(sample), rand)) ?? 'undefined');
      } catch {
        out.push(sample);
      }
    } else {
      const len = Math.floor(rand() * 200);
      out.push(Array.from({ length: len }, () => String.fromCharCode(Math.floor(rand() * 0x3000))).join(''));
    }
  }
  return out;
}

function sampleSpec(): InvocationSpec {
  return {
    runId: 'run_conformance',
    prompt: `# Runbook\n\nWrite /app/results/out.txt.\n${'Long prompt text. '.repeat(2000)}`,
    model: '',
    provider: 'simulated',
    gatewayUrl: 'http://127.0.0.1:4100',
    token: 'jrt_conformance_token',
    deadlineSec: 600,
    workdir: '/app',
    resultsDir: '/app/results',
  };
}

function pushAll(parser: OutputParser, lines: string[]): AgentEvent[] {
  return lines.flatMap((line) => parser.push(line));
}

export function runConformance(adapter: RuntimeAdapter, fixtures: ConformanceFixtures): void {
  describe(`${adapter.name} meets the runtime contract`, () => {
    it('describes itself: known name, pinned image, known providers including simulated', () => {
      expect(AGENT_NAMES).toContain(adapter.name);
      expect(adapter.cliVersion).toMatch(/^\d+\.\d+\.\d+/);
      expect(adapter.image.endsWith(`:${adapter.cliVersion}`)).toBe(true);
      expect(adapter.providers.length).toBeGreaterThan(0);
      for (const p of adapter.providers) expect(PROVIDER_NAMES).toContain(p);
      expect(adapter.providers).toContain('simulated');
      expect(adapter.defaultModel).not.toBe('');
    });

    it('builds an invocation that carries the gateway and token, and the prompt outside argv', () => {
      const spec = sampleSpec();
      const inv = adapter.buildInvocation(spec);
      expect(inv.argv.length).toBeGreaterThan(0);
      expect(inv.argv.join(' ')).not.toContain(spec.prompt);
      for (const file of inv.files) expect(file.path.startsWith('/')).toBe(true);
      if (inv.stdinFile !== undefined) expect(inv.files.map((f) => f.path)).toContain(inv.stdinFile);
      const fileText = inv.files.map((f) => f.content.toString()).join('\n');
      // As it is, or as a JSON string (a CLI that reads its prompt as a JSON message).
      const escaped = JSON.stringify(spec.prompt).slice(1, -1);
      expect(fileText.includes(spec.prompt) || fileText.includes(escaped)).toBe(true);
      const envText = Object.values(inv.env).join('\n');
      expect(`${envText}\n${fileText}`).toContain(spec.token);
      expect(`${envText}\n${fileText}`).toContain(spec.gatewayUrl);
      for (const value of Object.values(inv.env)) expect(typeof value).toBe('string');
    });

    it('turns every recording into valid events without throwing', () => {
      for (const run of Object.values(fixtures) as RecordedRun[]) {
        const result = replay(adapter, run);
        for (const event of [...result.events, ...result.finishEvents]) expectValidEvent(event);
        expectValidOutcome(result.outcome);
      }
    });

    it('success: completes with final text, the agent’s words and token usage', () => {
      const { events, outcome } = replay(adapter, fixtures.success);
      expect(outcome.status, JSON.stringify(outcome)).toBe('completed');
      expect(outcome.finalText.trim()).not.toBe('');
      expect(ofType(events, 'agent.message').length).toBeGreaterThanOrEqual(1);
      expect(ofType(events, 'usage').length).toBeGreaterThanOrEqual(1);
    });

    it('tool use: a tool.call is answered by a tool.result with the same call id', () => {
      const { events } = replay(adapter, fixtures.toolUse);
      const calls = ofType(events, 'tool.call');
      expect(calls.length).toBeGreaterThanOrEqual(1);
      const callIndex = new Map(calls.map((c) => [c.data.call_id, events.indexOf(c)]));
      const answered = ofType(events, 'tool.result').filter((r) => {
        const at = callIndex.get(r.data.call_id);
        return at !== undefined && at < events.indexOf(r);
      });
      expect(answered.length).toBeGreaterThanOrEqual(1);
    });

    it('provider error: fails with a provider_ code and a message naming the HTTP status', () => {
      const { outcome } = replay(adapter, fixtures.providerError);
      expect(outcome.status).toBe('failed');
      if (outcome.status !== 'failed') return;
      expect(outcome.error.code).toMatch(/^provider_/);
      expect(outcome.error.message).toContain(String(fixtures.providerError.httpStatus));
    });

    it('crash: no result means agent_crashed, with the exit code or the kill named', () => {
      const recorded = replay(adapter, fixtures.crash);
      expect(recorded.outcome.status).toBe('failed');
      if (recorded.outcome.status === 'failed') {
        expect(recorded.outcome.error.code).toBe('agent_crashed');
        if (fixtures.crash.exitCode !== null) {
          expect(recorded.outcome.error.message).toContain(String(fixtures.crash.exitCode));
        }
      }
      const killed = replay(adapter, fixtures.crash, null);
      expect(killed.outcome.status === 'failed' && killed.outcome.error.code).toBe('agent_crashed');
    });

    it('long lines (> 64 KiB) are parsed whole, not logged as garbage', () => {
      const parser = adapter.createParser();
      const long = fixtures.longLine.lines.filter((l) => Buffer.byteLength(l) > LONG_LINE_BYTES);
      expect(long.length, 'the long-line fixture has a line over 64 KiB').toBeGreaterThan(0);
      let understood = 0;
      for (const line of fixtures.longLine.lines) {
        const events = parser.push(line);
        if (!long.includes(line)) continue;
        expect(ofType(events, 'log')).toEqual([]);
        if (events.length > 0) understood++;
      }
      expect(understood).toBeGreaterThan(0);
    });

    it('never throws on garbage, and still returns valid events and an outcome', () => {
      const samples = (Object.values(fixtures) as RecordedRun[]).flatMap((r) => r.lines);
      const garbage = garbageLines(samples, 600);
      // One parser per line, and one parser fed everything in order (state built from odd input).
      for (const line of garbage) {
        const parser = adapter.createParser();
        let events: AgentEvent[] = [];
        expect(
          () => {
            events = parser.push(line);
          },
          line.slice(0, 200),
        ).not.toThrow();
        for (const event of events) expectValidEvent(event);
      }
      for (const exitCode of [0, 1, null]) {
        const parser = adapter.createParser();
        const events = pushAll(parser, garbage);
        for (const event of events) expectValidEvent(event);
        const done = parser.finish(exitCode);
        for (const event of done.events) expectValidEvent(event);
        expectValidOutcome(done.outcome);
      }
    });
  });
}
