import type { Redis } from 'ioredis';
import { decodeEntry, EventHub } from './event-hub.js';
import { isTerminalEvent, type NewEvent, type StoredEvent } from './types.js';

export { compareIds } from './event-hub.js';

// XADD unless the stream already holds ARGV[1] entries (0: no cap). KEYS[1] = the stream;
// ARGV[2..] = its field/value pairs. Returns the new id, or nil when refused.
const CAPPED_XADD = `
local cap = tonumber(ARGV[1])
if cap > 0 and redis.call('XLEN', KEYS[1]) >= cap then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
`;

export const DEFAULT_MAX_FOLLOWERS = 20_000;

/**
 * One Redis Stream per run. Entry ids are the SSE event ids, so a client that reconnects with
 * Last-Event-ID resumes exactly after the last event it saw.
 */
export class EventStreamStore {
  /**
   * @param maxEntries the last line of defence of a run's event limit: past it, an append is
   *   refused (null) unless the event is terminal or marked `always`. 0: no cap.
   */
  private readonly hub: EventHub;

  /** `maxFollowers`: followers this store serves at once (API_MAX_FOLLOWERS). */
  constructor(
    private readonly redis: Redis,
    private readonly keyOf: (runId: string) => string,
    private readonly maxEntries = 0,
    opts: { maxFollowers?: number } = {},
  ) {
    this.hub = new EventHub(redis, { maxFollowers: opts.maxFollowers ?? DEFAULT_MAX_FOLLOWERS });
  }

  /**
   * The new event's id, or null when the stream is at its cap (the event is not stored).
   * `attempt`: the run's attempt that writes it (see StoredEvent).
   */
  async append(
    runId: string,
    event: NewEvent,
    opts: { always?: boolean; attempt?: number } = {},
  ): Promise<string | null> {
    const cap = opts.always || isTerminalEvent(event.type) ? 0 : this.maxEntries;
    const fields = ['type', event.type, 'data', JSON.stringify(event.data), 'ts', String(Date.now())];
    if (opts.attempt !== undefined) fields.push('attempt', String(opts.attempt));
    if (cap === 0) return (await this.redis.xadd(this.keyOf(runId), '*', ...fields)) as string;
    return (await this.redis.eval(CAPPED_XADD, 1, this.keyOf(runId), String(cap), ...fields)) as
      | string
      | null;
  }

  /** Events strictly after `afterId` ('0' or '0-0' for all), at most `count`. */
  async readAfter(runId: string, afterId: string, count = 1000): Promise<StoredEvent[]> {
    const start = afterId === '0' || afterId === '0-0' ? '-' : `(${afterId}`;
    const rows = await this.redis.xrange(this.keyOf(runId), start, '+', 'COUNT', count);
    return rows.map(([id, fields]) => decodeEntry(id, fields));
  }

  /** The run's latest event, or null when it has none. */
  async last(runId: string): Promise<StoredEvent | null> {
    const [row] = await this.redis.xrevrange(this.keyOf(runId), '+', '-', 'COUNT', 1);
    return row ? decodeEntry(row[0], row[1]) : null;
  }

  async readAll(runId: string): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    let after = '0';
    for (;;) {
      const page = await this.readAfter(runId, after, 1000);
      out.push(...page);
      if (page.length < 1000) return out;
      after = page[page.length - 1]!.id;
    }
  }

  /**
   * Yields every event after `afterId` and then new ones as they come, until the terminal event
   * or until `signal` aborts. All followers of this store share one Redis reader (EventHub), so a
   * follower holds no connection of its own and leaves nothing open when it goes.
   */
  follow(
    runId: string,
    afterId: string,
    signal: AbortSignal,
    onWait?: () => void,
  ): AsyncGenerator<StoredEvent> {
    return this.hub.follow(this.keyOf(runId), afterId, signal, onWait);
  }

  /** Throws the 503 a new follower would get when this process already holds its maximum. */
  assertFollowerRoom(): void {
    this.hub.assertRoom();
  }

  /** Followers held now, and the streams they follow. */
  followStats(): { followers: number; streams: number } {
    return { followers: this.hub.followers, streams: this.hub.streams };
  }

  /** Closes the shared reader's connections (their followers end). */
  async close(): Promise<void> {
    await this.hub.close();
  }

  async expire(runId: string, seconds: number): Promise<void> {
    await this.redis.expire(this.keyOf(runId), seconds);
  }
}

/** A stream id is `<ms>-<seq>`; anything else in Last-Event-ID is rejected rather than misread. */
export function isStreamId(v: string): boolean {
  return /^\d{1,20}-\d{1,20}$/.test(v) || v === '0';
}
