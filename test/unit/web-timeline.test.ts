import { describe, expect, it } from 'vitest';
import { parseMarkdown } from '../../src/web/markdown.js';
import { Timeline, type TimelineEvent } from '../../src/web/timeline.js';

let n = 0;
const ev = (type: string, data: Record<string, unknown> = {}): TimelineEvent => ({
  id: `${++n}-0`,
  type,
  ts: n,
  data,
});

describe('the web timeline', () => {
  it('shows each connection through the egress proxy as a line among the logs', () => {
    const t = new Timeline(100);
    t.apply(
      ev('net.connect', {
        host: 'pypi.org',
        port: 443,
        kind: 'connect',
        outcome: 'allowed',
        bytes_up: 1289,
        bytes_down: 21226,
        ms: 694,
      }),
    );
    const e = t.apply(
      ev('net.connect', {
        host: 'example.com',
        port: 443,
        kind: 'connect',
        outcome: 'refused',
        code: 'not_allowed',
        reason: 'example.com is not allowed by this run’s egress policy',
        bytes_up: 0,
        bytes_down: 0,
        ms: 0,
      }),
    );
    expect(e).toMatchObject({
      kind: 'log',
      lines: [
        'net: pypi.org:443 allowed, 1.3 KiB up, 20.7 KiB down, 694ms',
        'net: example.com:443 refused: example.com is not allowed by this run’s egress policy',
      ],
    });
  });

  it('joins streamed text, folds each result into its call, groups log lines', () => {
    const t = new Timeline(100);
    t.apply(ev('run.started', { sandbox_id: 'abcdef0123456789', runtime_version: '2.1' }));
    t.apply(ev('agent.message', { text: 'Hel', delta: true }));
    t.apply(ev('usage', { input_tokens: 10, output_tokens: 5, source: 'gateway' }));
    t.apply(ev('agent.message', { text: 'lo', delta: true }));
    t.apply(ev('tool.call', { call_id: 'a', name: 'Bash', input: { command: 'ls' } }));
    t.apply(ev('log', { stream: 'stderr', line: 'x' }));
    t.apply(ev('log', { stream: 'stderr', line: 'y' }));
    const folded = t.apply(ev('tool.result', { call_id: 'a', output: 'file', is_error: false }));
    t.apply(
      ev('run.completed', {
        duration_ms: 1500,
        usage: { input_tokens: 10, output_tokens: 5, cost_usd: 0.002 },
      }),
    );
    expect(folded?.kind).toBe('tool');
    expect(t.entries.map(({ key: _k, ...e }) => e)).toEqual([
      { kind: 'lifecycle', text: 'started in sandbox abcdef012345 · 2.1' },
      { kind: 'message', text: 'Hello' },
      {
        kind: 'tool',
        callId: 'a',
        line: 'Bash: ls',
        input: '{\n  "command": "ls"\n}',
        result: { output: 'file', isError: false, truncated: false },
      },
      { kind: 'log', lines: ['x', 'y'] },
      { kind: 'end', status: 'completed', text: 'completed in 1.5s · 15 tokens · $0.0020' },
    ]);
    expect(t.usage.tokens).toBe(15);
    expect(t.status).toBe('completed');
    expect(t.lastId).toBe(`${n}-0`);
  });

  it('past its bound it counts what it does not draw, and still shows the end', () => {
    const t = new Timeline(100);
    for (let i = 0; i < 150; i++) t.apply(ev('agent.message', { text: `m${i}` }));
    t.apply(ev('run.failed', { duration_ms: 10, error: { code: 'x', message: 'boom' }, usage: {} }));
    expect(t.entries).toHaveLength(102);
    expect(t.entries[100]).toMatchObject({ kind: 'overflow', count: 50 });
    expect(t.entries[101]).toMatchObject({
      kind: 'end',
      status: 'failed',
      text: 'failed after 10ms · 0 tokens · —: x: boom',
    });
  });
});

describe('markdown preview', () => {
  it('yields structure, not HTML: headings, lists, code, inline marks; links as plain text', () => {
    const md =
      '# Title\n\nSome **bold** and `code` and *it*.\nSecond line.\n\n- a\n- [b](javascript:void)\n\n```\n<script>x</script>\n```\n\n> quoted\n\n---';
    expect(parseMarkdown(md)).toEqual([
      { kind: 'heading', level: 1, inline: [{ kind: 'text', text: 'Title' }] },
      {
        kind: 'paragraph',
        inline: [
          { kind: 'text', text: 'Some ' },
          { kind: 'strong', text: 'bold' },
          { kind: 'text', text: ' and ' },
          { kind: 'code', text: 'code' },
          { kind: 'text', text: ' and ' },
          { kind: 'em', text: 'it' },
          { kind: 'text', text: '. Second line.' },
        ],
      },
      {
        kind: 'list',
        ordered: false,
        items: [[{ kind: 'text', text: 'a' }], [{ kind: 'text', text: 'b (javascript:void)' }]],
      },
      { kind: 'code', text: '<script>x</script>' },
      { kind: 'quote', inline: [{ kind: 'text', text: 'quoted' }] },
      { kind: 'rule' },
    ]);
  });
});
