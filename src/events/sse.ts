import type { ServerResponse } from 'node:http';

/**
 * The one SSE encoder. Nothing else writes SSE bytes: every stream the server sends (chat
 * completion chunks, run events) goes through SseStream.
 */
export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
  retry?: number;
}

const LINE_BREAK = /\r\n|\r|\n/;

export function encodeSse(msg: SseMessage): string {
  let out = '';
  if (msg.event !== undefined) out += `event: ${singleLine('event', msg.event)}\n`;
  if (msg.id !== undefined) out += `id: ${singleLine('id', msg.id)}\n`;
  if (msg.retry !== undefined) out += `retry: ${Math.max(0, Math.floor(msg.retry))}\n`;
  for (const line of msg.data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return `${out}\n`;
}

export function encodeComment(text = ''): string {
  return text
    .split(LINE_BREAK)
    .map((l) => `:${l === '' ? '' : ` ${l}`}\n`)
    .join('')
    .concat('\n');
}

function singleLine(field: string, v: string): string {
  // A line break here would let the value forge other fields; an id may not hold NUL either.
  if (LINE_BREAK.test(v) || (field === 'id' && v.includes('\0'))) {
    throw new Error(`SSE ${field} must be a single line`);
  }
  return v;
}

/** Frames of messages many streams send, by the object they encode; gone with that object. */
const sharedFrames = new WeakMap<object, string>();

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const;

/**
 * An SSE response over a raw Node response: headers, messages, heartbeat comments, back-pressure
 * (waits for 'drain'), and a signal that fires when the client goes away.
 *
 * Its headers may wait for its first message (`open` with `holdMs`), so that the two leave in one
 * socket write: a write is a system call, and a thousand followers joining a run at once each
 * saved one (their headers were about a third of the API's socket-write CPU in such a burst).
 * They never wait longer than `holdMs`, or past `flush()`.
 */
export class SseStream {
  private readonly abort = new AbortController();
  private heartbeat: NodeJS.Timeout | undefined;
  private ended = false;
  /** The headers are written but not sent yet (held for the first message). */
  private holding = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly heartbeatMs: number,
  ) {
    res.on('close', () => this.onClosed());
  }

  /** Aborts when the client disconnects or the stream is ended. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get closed(): boolean {
    return this.ended || this.abort.signal.aborted;
  }

  /** Sends the headers now, or with the first message if it comes within `holdMs`. */
  open(status: number, headers: Record<string, string>, holdMs = 0): void {
    this.res.writeHead(status, { ...SSE_HEADERS, ...headers });
    this.holding = true;
    // Held: the first beat of the heartbeat timer sends them, if nothing has by then.
    if (holdMs <= 0) this.flush();
    else this.armHeartbeat(Math.min(holdMs, this.heartbeatMs));
  }

  /** Sends held headers now (nothing to send yet, and the client should know it is connected). */
  flush(): void {
    if (!this.holding || this.closed) return;
    this.holding = false;
    this.res.flushHeaders();
    this.armHeartbeat();
  }

  async send(msg: SseMessage): Promise<void> {
    await this.write(encodeSse(msg));
  }

  /**
   * Sends the message `key` stands for, encoded once for every stream that sends it: an event
   * fanned out to ten thousand followers is serialised once, not ten thousand times.
   */
  async sendShared(key: object, msg: () => SseMessage): Promise<void> {
    let frame = sharedFrames.get(key);
    if (frame === undefined) {
      frame = encodeSse(msg());
      sharedFrames.set(key, frame);
    }
    await this.write(frame);
  }

  async comment(text = ''): Promise<void> {
    await this.write(encodeComment(text));
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.stopHeartbeat();
    if (!this.res.writableEnded) this.res.end();
    this.abort.abort();
  }

  private async write(chunk: string): Promise<void> {
    if (this.closed) return;
    // Any write counts as activity: the heartbeat only fills silences. Held headers go with it.
    this.holding = false;
    this.armHeartbeat();
    if (this.res.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  private armHeartbeat(ms = this.heartbeatMs): void {
    this.stopHeartbeat();
    if (this.closed) return;
    this.heartbeat = setTimeout(() => {
      if (this.holding) this.flush();
      else void this.comment('keepalive');
    }, ms);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearTimeout(this.heartbeat);
    this.heartbeat = undefined;
  }

  private onClosed(): void {
    this.stopHeartbeat();
    this.ended = true;
    this.abort.abort();
  }
}
