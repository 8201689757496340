/**
 * The reading side of src/events/sse.ts: text in, messages out, as the WHATWG EventSource spec
 * parses them (lines end in CRLF, LF or CR; `data` lines join with "\n"; a leading space after the
 * colon is dropped; comments and unknown fields are ignored). Plain TypeScript with no Node or DOM
 * types, so the CLI (Node) and the web page (browser) share it.
 */
export interface SseMessage {
  /** `message` when the server named none. */
  event: string;
  /** The last `id:` seen so far in the stream (what a client sends back as Last-Event-ID). */
  id: string | undefined;
  data: string;
}

export class SseTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`an event of the stream is larger than ${limit} characters`);
    this.name = 'SseTooLargeError';
  }
}

export class SseParser {
  private buf = '';
  /** A CR ended the last chunk: an LF that starts the next one belongs to it. */
  private pendingCr = false;
  private event = '';
  private data: string[] = [];
  private dataSize = 0;
  /** `id:` of the message being read; it becomes lastId only once that message is complete. */
  private pendingId: string | undefined;
  private lastId: string | undefined;

  /** `maxMessageChars` bounds one message (and one unfinished line): past it, push() throws. */
  constructor(private readonly maxMessageChars = 8 * 1024 * 1024) {}

  push(text: string): SseMessage[] {
    let s = text;
    if (this.pendingCr && s.startsWith('\n')) s = s.slice(1);
    this.pendingCr = false;
    this.buf += s;
    const out: SseMessage[] = [];
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const ch = this.buf.charCodeAt(i);
      if (ch !== 10 && ch !== 13) continue;
      const line = this.buf.slice(start, i);
      if (ch === 13) {
        if (i + 1 === this.buf.length) this.pendingCr = true;
        else if (this.buf.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    this.buf = this.buf.slice(start);
    if (this.buf.length + this.dataSize > this.maxMessageChars)
      throw new SseTooLargeError(this.maxMessageChars);
    return out;
  }

  /** The id to resume after: the last `id:` of a complete message. */
  get lastEventId(): string | undefined {
    return this.lastId;
  }

  private line(line: string): SseMessage | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.data.push(value);
      this.dataSize += value.length + 1;
      if (this.dataSize > this.maxMessageChars) throw new SseTooLargeError(this.maxMessageChars);
    } else if (field === 'event') {
      this.event = value;
    } else if (field === 'id' && !value.includes('\0')) {
      this.pendingId = value;
    }
    return null;
  }

  private dispatch(): SseMessage | null {
    const had = this.data.length > 0;
    if (this.pendingId !== undefined) this.lastId = this.pendingId;
    const msg = { event: this.event || 'message', id: this.lastId, data: this.data.join('\n') };
    this.event = '';
    this.data = [];
    this.dataSize = 0;
    return had ? msg : null;
  }
}
