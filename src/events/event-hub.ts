import type { Redis } from 'ioredis';
import { AppError } from '../errors.js';
import { isTerminalEvent, type StoredEvent } from './types.js';

/** Stream entry ids (`<ms>-<seq>`) in order; '0' sorts first. */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am === bm ? as - bs : am - bm;
}

type RawEntry = [string, string[]];

export function decodeEntry(id: string, fields: string[]): StoredEvent {
  const map: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) map[fields[i]!] = fields[i + 1]!;
  const ev = {
    id,
    type: map.type,
    data: JSON.parse(map.data ?? '{}'),
    ts: Number(map.ts ?? 0),
  } as StoredEvent;
  if (map.attempt !== undefined) ev.attempt = Number(map.attempt);
  return ev;
}

export interface EventHubOptions {
  /** Followers this process holds at once (API_MAX_FOLLOWERS); one more is refused with a 503. */
  maxFollowers: number;
  /** How long one shared XREAD blocks before it is sent again. */
  blockMs?: number;
  /** Live events queued for one follower before it is switched back to reading Redis itself. */
  queueMax?: number;
}

const PAGE = 500;

/** One stream followed by one or more clients, and how far the shared reader has read it. */
interface Topic {
  key: string;
  /** Null until the stream's current end is known; the reader skips the topic until then. */
  cursor: string | null;
  ready: Promise<void>;
  followers: Set<Follower>;
}

interface Follower {
  cursor: string;
  queue: StoredEvent[];
  /** The queue overflowed (a slow client): events are read again from Redis from `cursor`. */
  lagging: boolean;
  wake: (() => void) | null;
}

/**
 * Fans a process's followed event streams out from one Redis reader. Every follower of every run
 * shares one blocking XREAD (on its own connection) and one connection for catch-up reads, so a
 * follower costs no Redis connection of its own and is gone from Redis' view the moment it leaves.
 *
 * A follower first reads what it missed (XRANGE after its Last-Event-ID), then takes live events
 * from the shared reader, skipping any it already had. The shared reader starts each stream at its
 * end as it stood when the stream's first follower came, before that follower's catch-up read, so
 * no event falls between the two.
 */
export class EventHub {
  private readonly topics = new Map<string, Topic>();
  /** Catch-up pages asked for and not sent to Redis yet, by start and stream. */
  private readonly pageReads = new Map<string, Promise<StoredEvent[]>>();
  private followerCount = 0;
  private conns: { reader: Redis; fetcher: Redis } | undefined;
  private readerId: number | null = null;
  private loop: Promise<void> | undefined;
  private idleWake: (() => void) | null = null;
  private reading = false;
  /** A stream became ready since the reader last chose what to read. */
  private needRefresh = false;
  private closed = false;
  private readonly blockMs: number;
  private readonly queueMax: number;

  constructor(
    private readonly redis: Redis,
    private readonly opts: EventHubOptions,
  ) {
    this.blockMs = opts.blockMs ?? 5000;
    this.queueMax = opts.queueMax ?? 1000;
  }

  /** Followers held now (all streams). */
  get followers(): number {
    return this.followerCount;
  }

  /** Streams followed now. */
  get streams(): number {
    return this.topics.size;
  }

  /** Throws the 503 a new follower would get, when the process holds its maximum. */
  assertRoom(): void {
    if (this.followerCount >= this.opts.maxFollowers) throw tooManyFollowers(this.opts.maxFollowers);
  }

  /**
   * Events of `key` strictly after `afterId`, then live ones, until the terminal event or until
   * `signal` aborts. `onWait` is called each time the follower has had all there is and waits.
   */
  async *follow(
    key: string,
    afterId: string,
    signal: AbortSignal,
    onWait?: () => void,
  ): AsyncGenerator<StoredEvent> {
    if (signal.aborted) return;
    this.assertRoom();
    const f: Follower = { cursor: afterId === '' ? '0' : afterId, queue: [], lagging: false, wake: null };
    const topic = this.join(key, f);
    const onAbort = () => f.wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await topic.ready;
      let catchingUp = true;
      while (!signal.aborted) {
        if (catchingUp || f.lagging) {
          // Whatever the queue holds is in Redis too, after the cursor: the catch-up reads it.
          f.lagging = false;
          f.queue = [];
          const { events, ended, more } = await this.catchUp(key, f, signal);
          catchingUp = more;
          for (const ev of events) yield ev;
          if (ended) return;
          continue;
        }
        const ev = f.queue.shift();
        if (!ev) {
          onWait?.();
          await new Promise<void>((resolve) => {
            f.wake = resolve;
          });
          f.wake = null;
          continue;
        }
        if (compareIds(ev.id, f.cursor) <= 0) continue;
        f.cursor = ev.id;
        yield ev;
        if (isTerminalEvent(ev.type)) return;
      }
    } catch (err) {
      if (!signal.aborted && !this.closed) throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.leave(key, topic, f);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.topics.values()) for (const f of t.followers) f.wake?.();
    this.idleWake?.();
    const conns = this.conns;
    this.conns = undefined;
    conns?.reader.disconnect();
    conns?.fetcher.disconnect();
    await this.loop?.catch(() => undefined);
  }

  // Catch-up: every event after the follower's cursor that Redis holds now, page by page.
  private async catchUp(
    key: string,
    f: Follower,
    signal: AbortSignal,
  ): Promise<{ events: StoredEvent[]; ended: boolean; more: boolean }> {
    const start = f.cursor === '0' || f.cursor === '0-0' ? '-' : `(${f.cursor}`;
    // One page at a time: a long backlog is never held in memory whole.
    const page = await this.readPage(key, start);
    const events: StoredEvent[] = [];
    if (signal.aborted) return { events, ended: true, more: false };
    for (const ev of page) {
      f.cursor = ev.id;
      events.push(ev);
      if (isTerminalEvent(ev.type)) return { events, ended: true, more: false };
    }
    return { events, ended: false, more: page.length === PAGE };
  }

  /**
   * One page of `key` from `start`, read once for every follower that asks for the same page before
   * the read is sent (a thousand clients joining a run at once make one XRANGE, decoded once).
   * A follower only joins a read not sent yet: it was in its topic before Redis read the page, so
   * whatever the page lacks reaches it live.
   */
  private readPage(key: string, start: string): Promise<StoredEvent[]> {
    const at = `${start}\n${key}`;
    let read = this.pageReads.get(at);
    if (!read) {
      const { fetcher } = this.connections();
      read = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
        this.pageReads.delete(at);
        const rows = (await fetcher.xrange(key, start, '+', 'COUNT', PAGE)) as RawEntry[];
        return rows.map(([id, fields]) => decodeEntry(id, fields));
      });
      this.pageReads.set(at, read);
      // Each follower awaits it; this only keeps a failure nobody waits for from going unhandled.
      read.catch(() => undefined);
    }
    return read;
  }

  private join(key: string, f: Follower): Topic {
    let topic = this.topics.get(key);
    if (!topic) {
      const t: Topic = { key, cursor: null, ready: Promise.resolve(), followers: new Set() };
      t.ready = this.startTopic(t).catch((err: unknown) => {
        // Its followers get the error; the next follower starts the stream afresh.
        if (this.topics.get(key) === t) this.topics.delete(key);
        throw err;
      });
      // Awaited by every follower; this only keeps a rejection nobody waits for from going unhandled.
      t.ready.catch(() => undefined);
      this.topics.set(key, t);
      topic = t;
    }
    topic.followers.add(f);
    this.followerCount++;
    return topic;
  }

  private leave(key: string, topic: Topic, f: Follower): void {
    if (!topic.followers.delete(f)) return;
    this.followerCount--;
    f.queue = [];
    if (topic.followers.size === 0 && this.topics.get(key) === topic) this.topics.delete(key);
  }

  /** The stream's end as it stands now is where the shared reader starts it. */
  private async startTopic(t: Topic): Promise<void> {
    const { fetcher } = this.connections();
    const [last] = (await fetcher.xrevrange(t.key, '+', '-', 'COUNT', 1)) as RawEntry[];
    t.cursor = last ? last[0] : '0-0';
    this.needRefresh = true;
    this.wakeReader();
  }

  private connections(): { reader: Redis; fetcher: Redis } {
    if (this.closed) throw new Error('the event hub is closed');
    if (!this.conns) {
      // Patient even on the API's fail-fast connection: a stream under way waits out a Redis blip.
      const patient = { maxRetriesPerRequest: null, enableOfflineQueue: true } as const;
      // The blocking XREAD is alone on its connection, and sent alone.
      const reader = this.redis.duplicate({ ...patient, enableAutoPipelining: false });
      const fetcher = this.redis.duplicate(patient);
      // Failures surface through the commands; the listeners only keep them off stderr.
      reader.on('error', () => undefined);
      fetcher.on('error', () => undefined);
      // A reconnected reader is another client: its id is asked again before the next read.
      reader.on('close', () => {
        this.readerId = null;
      });
      this.conns = { reader, fetcher };
      this.loop = this.readLoop(reader);
    }
    return this.conns;
  }

  private async readLoop(reader: Redis): Promise<void> {
    while (!this.closed) {
      this.needRefresh = false;
      const ready = [...this.topics.values()].filter((t) => t.cursor !== null && t.followers.size > 0);
      if (ready.length === 0) {
        await new Promise<void>((resolve) => {
          this.idleWake = resolve;
        });
        this.idleWake = null;
        continue;
      }
      let res: [string, RawEntry[]][] | null;
      try {
        if (this.readerId === null) this.readerId = (await reader.client('ID')) as number;
        this.reading = true;
        res = (await reader.xread(
          'COUNT',
          PAGE,
          'BLOCK',
          this.blockMs,
          'STREAMS',
          ...ready.map((t) => t.key),
          ...ready.map((t) => t.cursor as string),
        )) as [string, RawEntry[]][] | null;
      } catch {
        if (this.closed) return;
        // Unblocked with an error, or Redis away: the next round reads again from the same cursors.
        await sleep(100);
        continue;
      } finally {
        this.reading = false;
      }
      if (res) this.deliver(res);
    }
  }

  private deliver(res: [string, RawEntry[]][]): void {
    for (const [key, entries] of res) {
      const topic = this.topics.get(key);
      if (!topic) continue;
      for (const [id, fields] of entries) {
        topic.cursor = id;
        const ev = decodeEntry(id, fields);
        for (const f of topic.followers) {
          if (f.lagging) continue;
          if (f.queue.length >= this.queueMax) {
            f.queue = [];
            f.lagging = true;
          } else {
            f.queue.push(ev);
          }
        }
      }
      for (const f of topic.followers) f.wake?.();
    }
  }

  /** A new stream joins the shared read: the read under way is cut short to include it. */
  private wakeReader(): void {
    if (this.idleWake) {
      this.idleWake();
      return;
    }
    void this.unblock().catch(() => undefined);
  }

  private async unblock(): Promise<void> {
    // Until the reader has chosen again. The XREAD may still be on its way to Redis (UNBLOCK then
    // finds nothing blocked), or not sent yet: try again shortly. Past the tries, the read ends
    // by itself within blockMs.
    for (let i = 0; i < 50 && this.needRefresh && !this.closed; i++) {
      const id = this.readerId;
      const fetcher = this.conns?.fetcher;
      if (this.reading && id !== null && fetcher) {
        const n = (await fetcher.client('UNBLOCK', id)) as number;
        if (n === 1) return;
      }
      await sleep(2);
    }
  }
}

function tooManyFollowers(max: number): AppError {
  return new AppError(
    `This server is already streaming events to ${max} clients, its limit (API_MAX_FOLLOWERS). Retry shortly, or use another API process.`,
    {
      status: 503,
      type: 'service_unavailable',
      code: 'too_many_followers',
      retryable: true,
      headers: { 'retry-after': '5' },
    },
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
