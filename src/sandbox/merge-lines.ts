import { PassThrough, type Readable } from 'node:stream';

/**
 * One stream of the whole lines of several: a line of one source never lands inside a line of
 * another. Ends when every source has ended; a source's last line without a newline is passed
 * on as it is. Back-pressure reaches every source (a paused output pauses them all).
 */
const MAX_HELD_BYTES = 64 * 1024;

export function mergeLines(...sources: Readable[]): Readable {
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  let open = sources.length;
  for (const src of sources) {
    let partial: Buffer = Buffer.alloc(0);
    src.on('data', (chunk: Buffer) => {
      const nl = chunk.lastIndexOf(0x0a);
      // A line longer than this is passed on in pieces: holding it whole would be unbounded.
      if (nl < 0 && partial.length + chunk.length <= MAX_HELD_BYTES) {
        partial = Buffer.concat([partial, chunk]);
        return;
      }
      if (nl < 0) {
        const all = Buffer.concat([partial, chunk]);
        partial = Buffer.alloc(0);
        send(all);
        return;
      }
      const whole = Buffer.concat([partial, chunk.subarray(0, nl + 1)]);
      partial = Buffer.from(chunk.subarray(nl + 1));
      send(whole);
    });
    const send = (buf: Buffer) => {
      if (!out.write(buf)) {
        src.pause();
        out.once('drain', () => src.resume());
      }
    };
    let ended = false;
    const done = () => {
      if (ended) return;
      ended = true;
      if (partial.length > 0) out.write(partial);
      partial = Buffer.alloc(0);
      if (--open === 0) out.end();
    };
    src.once('end', done);
    src.once('error', done);
    src.once('close', done);
  }
  return out;
}
