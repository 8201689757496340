import type { Readable } from 'node:stream';
import { wholeUtf8Length } from '../utf8.js';

/** One line of a sandbox's output, without its line break. */
export interface Line {
  text: string;
  /** The line was longer than the limit: `text` is its start, the rest was read and dropped. */
  truncated: boolean;
}

const NL = 0x0a;

/**
 * Splits a byte stream into lines of at most `maxBytes` UTF-8 bytes (CLIs print JSON lines far
 * longer than 64 KiB, so the limit is large). A longer line yields its first `maxBytes` (cut on a
 * character boundary), flagged, and the rest of it is skipped up to the next line break. Each byte
 * is looked at once and no more than one line's limit is held, whatever the sandbox prints.
 * Yields the lines that each chunk completes, as one batch (a flood of short lines costs one
 * await per chunk, not per line), and the last partial line at the end.
 */
export async function* linesOf(stream: Readable, maxBytes: number): AsyncGenerator<Line[]> {
  const line = new LineBuffer(maxBytes);
  for await (const raw of stream) {
    const chunk: Buffer = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : (raw as Buffer);
    const batch: Line[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(NL, start); nl >= 0; nl = chunk.indexOf(NL, start)) {
      batch.push(line.end(chunk, start, nl));
      start = nl + 1;
    }
    line.add(chunk.subarray(start));
    if (batch.length > 0) yield batch;
  }
  if (!line.empty) yield [line.take()];
}

/** The line being read: its first `maxBytes` bytes, and whether more were dropped. */
class LineBuffer {
  private parts: Buffer[] = [];
  private held = 0;
  private overflow = false;

  constructor(private readonly maxBytes: number) {}

  get empty(): boolean {
    return this.held === 0 && !this.overflow;
  }

  add(bytes: Buffer): void {
    if (bytes.length === 0) return;
    const room = this.maxBytes - this.held;
    if (bytes.length > room) this.overflow = true;
    if (room <= 0) return;
    // A copy, not a view: a view would keep the whole chunk it came from alive.
    const kept = Buffer.from(bytes.subarray(0, room));
    this.parts.push(kept);
    this.held += kept.length;
  }

  /** The line that ends at `chunk[end]` (a line break), of which `chunk[start..end)` is the last part. */
  end(chunk: Buffer, start: number, end: number): Line {
    // The common case, a whole line within one chunk: decoded straight from it, no copy.
    if (this.empty && end - start <= this.maxBytes)
      return { text: lineText(chunk, start, end), truncated: false };
    this.add(chunk.subarray(start, end));
    return this.take();
  }

  take(): Line {
    const bytes = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.held);
    const truncated = this.overflow;
    // A line cut at the limit may end inside a character: keep whole characters only.
    const end = truncated ? wholeUtf8Length(bytes) : bytes.length;
    const text = truncated ? bytes.toString('utf8', 0, end) : lineText(bytes, 0, end);
    this.parts = [];
    this.held = 0;
    this.overflow = false;
    return { text, truncated };
  }
}

/** `bytes[start..end)` as text, without the CR of a CRLF line break. */
function lineText(bytes: Buffer, start: number, end: number): string {
  return bytes.toString('utf8', start, end > start && bytes[end - 1] === 0x0d ? end - 1 : end);
}
