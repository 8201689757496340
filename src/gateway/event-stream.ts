/**
 * A passive reader of the AWS event stream framing (`application/vnd.amazon.eventstream`), the
 * binary format of Bedrock's streaming answers (invoke-with-response-stream, converse-stream).
 *
 * Each message: total length (u32 BE), headers length (u32 BE), prelude CRC (u32), headers,
 * payload, message CRC (u32). A header is a name (u8 length + UTF-8), a type byte, and a value.
 * The CRCs are not checked: the client that receives these bytes does that; this reader only looks.
 */

export interface EventStreamMessage {
  /** String headers only (`:event-type`, `:message-type`, `:content-type`, ...). */
  headers: Record<string, string>;
  payload: Uint8Array;
}

const PRELUDE = 12;
const TRAILER = 4;
/** A message past this size is not one we read usage from; the reader stops rather than buffer it. */
export const MAX_EVENT_STREAM_MESSAGE = 16 * 1024 * 1024;

/** Sizes of the fixed-width header value types (type byte → bytes); 6 and 7 carry a u16 length. */
const FIXED: Record<number, number> = { 0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16 };

export class EventStreamDecoder {
  private buf: Uint8Array = new Uint8Array(0);
  private broken = false;
  private readonly text = new TextDecoder();

  /** Feeds bytes; returns every message they complete. */
  push(chunk: Uint8Array): EventStreamMessage[] {
    if (this.broken) return [];
    this.buf = concat(this.buf, chunk);
    const out: EventStreamMessage[] = [];
    while (this.buf.length >= PRELUDE) {
      const view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
      const total = view.getUint32(0);
      const headersLength = view.getUint32(4);
      if (total < PRELUDE + TRAILER + headersLength || total > MAX_EVENT_STREAM_MESSAGE) {
        // Not this framing (an error body, say): stop looking rather than misread what follows.
        this.broken = true;
        this.buf = new Uint8Array(0);
        break;
      }
      if (this.buf.length < total) break;
      const headers = this.headers(this.buf.subarray(PRELUDE, PRELUDE + headersLength));
      out.push({ headers, payload: this.buf.slice(PRELUDE + headersLength, total - TRAILER) });
      this.buf = this.buf.subarray(total);
    }
    return out;
  }

  private headers(bytes: Uint8Array): Record<string, string> {
    const out: Record<string, string> = {};
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let i = 0;
    while (i < bytes.length) {
      const nameLength = bytes[i]!;
      const name = this.text.decode(bytes.subarray(i + 1, i + 1 + nameLength));
      i += 1 + nameLength;
      const type = bytes[i]!;
      i += 1;
      const fixed = FIXED[type];
      if (fixed !== undefined) {
        i += fixed;
        continue;
      }
      if (type !== 6 && type !== 7) break; // an unknown type: its length cannot be known
      const length = view.getUint16(i);
      if (type === 7) out[name] = this.text.decode(bytes.subarray(i + 2, i + 2 + length));
      i += 2 + length;
    }
    return out;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
