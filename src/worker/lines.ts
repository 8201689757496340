import type { Readable } from 'node:stream';

/**
 * Splits a byte stream into lines without a length limit (CLIs print JSON lines far longer than
 * 64 KiB), decoding UTF-8 across chunk boundaries. Yields the last partial line at the end.
 */
export async function* linesOf(stream: Readable): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of stream) {
    pending += typeof chunk === 'string' ? chunk : decoder.decode(chunk as Uint8Array, { stream: true });
    let nl = pending.indexOf('\n');
    while (nl >= 0) {
      yield pending.slice(0, nl).replace(/\r$/, '');
      pending = pending.slice(nl + 1);
      nl = pending.indexOf('\n');
    }
  }
  pending += decoder.decode();
  if (pending) yield pending;
}
