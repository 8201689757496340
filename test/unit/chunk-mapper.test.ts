import { describe, expect, it } from 'vitest';
import { ChunkMapper, describeToolCall, TOOL_LINE_MAX } from '../../src/events/chunk-mapper.js';
import { emptyUsage, type NewEvent, type StoredEvent } from '../../src/events/types.js';

let seq = 0;
function ev(e: NewEvent): StoredEvent {
  return { ...e, id: `1-${seq++}`, ts: 0 } as StoredEvent;
}
const ctx = { runId: 'abc123', model: 'claude-sonnet-4-6', created: 1700000000 };

describe('ChunkMapper', () => {
  it('opens with an assistant role chunk that carries the trajectory id', () => {
    const c = new ChunkMapper(ctx).first('pending');
    expect(c.id).toBe('chatcmpl-abc123');
    expect(c.object).toBe('chat.completion.chunk');
    expect(c.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(c.jetty_metadata).toEqual({ trajectory_id: 'abc123', status: 'pending' });
  });

  it('puts the agent’s words in content, separating whole messages', () => {
    const m = new ChunkMapper(ctx);
    const a = m.map(ev({ type: 'agent.message', data: { text: 'first' } }));
    const b = m.map(ev({ type: 'agent.message', data: { text: 'second' } }));
    expect(a.chunks[0]!.choices[0]!.delta.content).toBe('first');
    expect(b.chunks[0]!.choices[0]!.delta.content).toBe('\n\nsecond');
    expect(b.chunks[0]!.jetty_event?.type).toBe('agent.message');
  });

  it('joins deltas without separators', () => {
    const m = new ChunkMapper(ctx);
    const parts = ['Hel', 'lo'].map((t) =>
      m.map(ev({ type: 'agent.message', data: { text: t, delta: true } })),
    );
    expect(parts.map((p) => p.chunks[0]!.choices[0]!.delta.content).join('')).toBe('Hello');
  });

  it('shows a tool call as one short reasoning line, never as tool_calls', () => {
    const m = new ChunkMapper(ctx);
    const out = m.map(
      ev({ type: 'tool.call', data: { call_id: 't1', name: 'Bash', input: { command: 'ls -la\n/app' } } }),
    );
    const delta = out.chunks[0]!.choices[0]!.delta as Record<string, unknown>;
    expect(delta.reasoning_content).toBe('Bash: ls -la /app\n');
    expect(delta.tool_calls).toBeUndefined();
  });

  it('bounds the tool line', () => {
    const line = describeToolCall('Write', { file_path: 'x'.repeat(1000) });
    expect(line.length).toBeLessThanOrEqual(TOOL_LINE_MAX);
    expect(line.endsWith('…')).toBe(true);
  });

  it('keeps other events visible as empty-delta chunks with jetty_event', () => {
    const out = new ChunkMapper(ctx).map(ev({ type: 'log', data: { stream: 'stderr', line: 'x' } }));
    expect(out.chunks[0]!.choices[0]!.delta).toEqual({});
    expect(out.chunks[0]!.jetty_event?.data).toEqual({ stream: 'stderr', line: 'x' });
  });

  it('ends a completed run with finish_reason, usage and artifacts', () => {
    const m = new ChunkMapper(ctx);
    m.map(
      ev({
        type: 'artifact',
        data: { path: 'a b/hello.txt', size: 2, sha256: 'f', content_type: 'text/plain' },
      }),
    );
    const usage = { ...emptyUsage(), input_tokens: 10, output_tokens: 4, cache_read_tokens: 5 };
    const out = m.map(
      ev({ type: 'run.completed', data: { final_text: 'ok', exit_code: 0, usage, duration_ms: 1 } }),
    );
    expect(out.final).toBe(true);
    expect(out.error).toBeUndefined();
    const last = out.chunks[0]!;
    expect(last.choices[0]!.finish_reason).toBe('stop');
    expect(last.usage).toMatchObject({ prompt_tokens: 15, completion_tokens: 4, total_tokens: 19 });
    expect(last.jetty_metadata?.status).toBe('completed');
    expect(last.jetty_metadata?.artifacts?.[0]?.url).toBe('/v1/runs/abc123/artifacts/a%20b/hello.txt');
  });

  it('ends a failed run with an error object the OpenAI SDKs raise', () => {
    const out = new ChunkMapper(ctx).map(
      ev({
        type: 'run.failed',
        data: {
          error: { code: 'provider_auth_error', message: 'HTTP 401' },
          exit_code: 1,
          usage: emptyUsage(),
          duration_ms: 1,
        },
      }),
    );
    expect(out.final).toBe(true);
    expect(out.error).toMatchObject({ code: 'provider_auth_error', message: 'HTTP 401' });
    expect(out.chunks[0]!.jetty_metadata?.status).toBe('failed');
  });

  it('says so in the stream when required outputs are missing', () => {
    const m = new ChunkMapper(ctx);
    const w = m.map(
      ev({ type: 'run.warning', data: { code: 'missing_required_outputs', message: 'no report.md' } }),
    );
    expect(w.chunks[0]!.choices[0]!.delta.reasoning_content).toContain('no report.md');
    const end = m.map(
      ev({
        type: 'run.completed',
        data: { final_text: '', exit_code: 0, usage: emptyUsage(), duration_ms: 1 },
      }),
    );
    expect(end.chunks[0]!.jetty_metadata?.warnings).toEqual([
      { code: 'missing_required_outputs', message: 'no report.md' },
    ]);
  });

  it('the last chunk names the primary outputs, first one first, and every warning of the run', () => {
    const m = new ChunkMapper({ ...ctx, primaryOutputs: ['deck.pdf', 'notes/summary.md'] });
    m.map(ev({ type: 'run.warning', data: { code: 'model_rewritten', message: 'a' } }));
    m.map(ev({ type: 'run.warning', data: { code: 'template_variables_unfilled', message: 'b' } }));
    const end = m.map(
      ev({
        type: 'run.failed',
        data: { error: { code: 'x', message: 'y' }, exit_code: 1, usage: emptyUsage(), duration_ms: 1 },
      }),
    );
    const meta = end.chunks[0]!.jetty_metadata!;
    expect(meta.primary_outputs).toEqual(['deck.pdf', 'notes/summary.md']);
    expect(meta.warnings?.map((w) => w.code)).toEqual(['model_rewritten', 'template_variables_unfilled']);
  });

  it('shows each connection through the egress proxy as a reasoning line, and the network summary at the end', () => {
    const m = new ChunkMapper(ctx);
    const line = (data: Extract<NewEvent, { type: 'net.connect' }>['data']) =>
      m.map(ev({ type: 'net.connect', data })).chunks[0]!.choices[0]!.delta.reasoning_content;
    expect(
      line({
        host: 'pypi.org',
        port: 443,
        kind: 'connect',
        outcome: 'allowed',
        bytes_up: 2048,
        bytes_down: 150_000,
        ms: 420,
      }),
    ).toBe('net: pypi.org:443 allowed, 2.0 KiB up, 146.5 KiB down, 420ms\n');
    expect(
      line({
        host: '169.254.169.254',
        port: 80,
        kind: 'http',
        method: 'GET',
        outcome: 'refused',
        code: 'private_address',
        reason:
          'refused to connect to 169.254.169.254: a link-local (cloud metadata) address; an operator can allow it in NETWORK_ALLOW_PRIVATE',
        bytes_up: 0,
        bytes_down: 0,
        ms: 0,
      }),
    ).toBe(
      'net: GET 169.254.169.254:80 refused: refused to connect to 169.254.169.254: a link-local (cloud metadata) address; an operator can allow it in NETWORK_ALLOW_PRIVATE\n',
    );
    const network = {
      policy: 'allowlist' as const,
      allow: ['pypi.org'],
      connections: 2,
      allowed: 1,
      refused: 1,
      failed: 0,
      bytes_up: 2048,
      bytes_down: 150_000,
      hosts: [],
    };
    const end = m.map(
      ev({
        type: 'run.completed',
        data: { final_text: 'ok', exit_code: 0, usage: emptyUsage(), duration_ms: 1, network },
      }),
    );
    expect(end.chunks[0]!.jetty_metadata?.network).toEqual(network);
  });
});
