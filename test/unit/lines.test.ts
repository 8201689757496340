import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type Line, linesOf } from '../../src/worker/lines.js';

async function collect(chunks: Iterable<Buffer | string>, max: number): Promise<Line[]> {
  const out: Line[] = [];
  for await (const batch of linesOf(Readable.from(chunks), max)) out.push(...batch);
  return out;
}

const MiB = 1024 * 1024;

describe('linesOf', () => {
  it('splits lines across chunks, decodes UTF-8 split between chunks, drops CR of CRLF', async () => {
    const euro = Buffer.from('€');
    const lines = await collect(
      [
        Buffer.from('one\r\ntw'),
        Buffer.from('o\n'),
        euro.subarray(0, 1),
        euro.subarray(1),
        Buffer.from('\nlast'),
      ],
      1024,
    );
    expect(lines).toEqual([
      { text: 'one', truncated: false },
      { text: 'two', truncated: false },
      { text: '€', truncated: false },
      { text: 'last', truncated: false },
    ]);
  });

  it('a 64 MiB line without a break is cut at the limit, flagged, and the next line still comes, in bounded memory', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let peak = 0;
    const base = process.memoryUsage();
    const used = () => {
      const m = process.memoryUsage();
      return m.heapUsed - base.heapUsed + (m.arrayBuffers - base.arrayBuffers);
    };
    function* flood(): Generator<Buffer> {
      // The same chunk again and again: whatever memory grows is held by the reader.
      for (let i = 0; i < 1024; i++) {
        peak = Math.max(peak, used());
        yield chunk;
      }
      yield Buffer.from('\nnext line\n');
    }
    const lines = await collect(flood(), MiB);
    expect(lines.map((l) => [l.text.length, l.truncated])).toEqual([
      [MiB, true],
      ['next line'.length, false],
    ]);
    expect(lines[1]?.text).toBe('next line');
    // One line's limit (1 MiB) and change: never the 64 MiB the sandbox printed.
    expect(peak).toBeLessThan(16 * MiB);
  });

  it('a line cut at the limit never ends in half a character', async () => {
    const [line] = await collect([Buffer.from(`ab${'€'.repeat(10)}\n`)], 6);
    expect(line).toEqual({ text: 'ab€', truncated: true });
  });

  it('100,000 short lines in one chunk are 100,000 lines', async () => {
    const text = Array.from({ length: 100_000 }, (_, i) => `line ${i}`).join('\n');
    const lines = await collect([Buffer.from(text)], 1024);
    expect(lines).toHaveLength(100_000);
    expect(lines.at(-1)).toEqual({ text: 'line 99999', truncated: false });
  });
});
