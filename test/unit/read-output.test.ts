import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RUN_LIMITS } from '../../src/events/limits.js';
import type { NewEvent } from '../../src/events/types.js';
import { claudeCodeAdapter } from '../../src/runtimes/claude-code.js';
import { readOutput } from '../../src/worker/read-output.js';
import { RunEventSink } from '../../src/worker/run-events.js';

const SECRET = '@@canary@@0123456789abcdef';

describe("reading a sandbox's output", () => {
  it('a line over the line limit that ends inside a secret keeps none of it; the next line is read as usual', async () => {
    const stored: NewEvent[] = [];
    const sink = new RunEventSink(
      {
        append: async (_r, ev) => {
          stored.push(ev);
          return `${stored.length}-0`;
        },
      },
      'run-1',
      { limits: DEFAULT_RUN_LIMITS },
    );
    sink.addRedactions({ CANARY: SECRET });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    // 1,020 x and the secret: a 1 KiB line limit cuts 4 characters into it, before any redaction.
    stdout.end(`${'x'.repeat(1020)}${SECRET} and more\nafter\n`);
    stderr.end(`${'x'.repeat(1022)}${SECRET}\n`);
    await readOutput({ stdout, stderr }, claudeCodeAdapter.createParser(), sink, 1024);
    await sink.flush();
    const text = JSON.stringify(stored);
    for (let n = 1; n <= SECRET.length; n++) expect(text.includes(`x${SECRET.slice(0, n)}`)).toBe(false);
    const lines = stored.flatMap((e) => (e.type === 'log' ? [e.data.line] : []));
    expect(lines).toEqual(expect.arrayContaining(['x'.repeat(1020), 'x'.repeat(1022), 'after']));
    expect(stored.filter((e) => e.type === 'run.warning')).toHaveLength(1);
    expect(sink.limitsHit).toEqual(['max_line_bytes']);
  });
});
