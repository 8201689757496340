import { LIMIT_SETTINGS, type LimitHit, OUTPUT_LIMIT_CODE, type RunLimits } from '../events/limits.js';
import { isTerminalEvent, type NewEvent } from '../events/types.js';
import type { Redactor } from '../tenancy/redact.js';

/** An event ready to store; `always` ones (the terminal event, limit notices) pass every budget. */
export interface Admitted {
  event: NewEvent;
  always: boolean;
}

/** Events whose strings are the agent's own words (a larger limit than tool output and logs). */
const MESSAGE_EVENTS = new Set<NewEvent['type']>([
  'agent.message',
  'agent.reasoning',
  'run.completed',
  'run.failed',
  'run.cancelled',
]);

/**
 * The budget of one run's stream, and the shape of each event in it: every event is redacted as a
 * whole and then each of its strings cut to its limit (marked `truncated: true`), so that no cut
 * can keep part of a secret. Once the run reaches its number of events or bytes, nothing more is
 * stored but the terminal event; the first time each limit is reached, a notice says so.
 */
export class EventLimiter {
  private events = 0;
  private bytes = 0;
  private full = false;
  private readonly hits: LimitHit[] = [];

  constructor(private readonly limits: RunLimits) {}

  /** The limits reached so far, in the order they were. */
  get limitsHit(): readonly LimitHit[] {
    return this.hits;
  }

  /** What to store for `event`: nothing, the event, and/or the notice of a limit it reached. */
  admit(event: NewEvent, redactor: Redactor): Admitted[] {
    if (isTerminalEvent(event.type)) return [{ event: this.shape(event, redactor), always: true }];
    // A flood ends here, before any work on the event.
    if (this.full) return [];
    if (this.events >= this.limits.maxEvents) return this.reached('max_events');
    const shaped = this.shape(event, redactor);
    const size = Buffer.byteLength(JSON.stringify(shaped.data));
    if (this.bytes + size > this.limits.maxStreamBytes) return this.reached('max_stream_bytes');
    this.events += 1;
    this.bytes += size;
    return [{ event: shaped, always: false }];
  }

  /**
   * Records that `limit` was reached; returns its notice the first time. `max_events` and
   * `max_stream_bytes` also close the stream to all but the terminal event.
   */
  reached(limit: LimitHit): Admitted[] {
    if (limit !== 'max_line_bytes') this.full = true;
    if (this.hits.includes(limit)) return [];
    this.hits.push(limit);
    return [
      {
        event: {
          type: 'run.warning',
          data: { code: OUTPUT_LIMIT_CODE, message: notice(limit, this.limits) },
        },
        always: true,
      },
    ];
  }

  /** `event` redacted, then each string cut to its limit. */
  shape<E extends NewEvent>(event: E, redactor: Redactor): E {
    const max = MESSAGE_EVENTS.has(event.type) ? this.limits.maxMessageBytes : this.limits.maxEventTextBytes;
    const state = { truncated: false };
    const data = walk(event.data, (s) => {
      const cut = redactor.cut(s, max);
      if (cut.truncated) state.truncated = true;
      return cut.text;
    }) as Record<string, unknown>;
    // Tool input is free-form JSON: many short strings can still make it as large as any text.
    if (event.type === 'tool.call') {
      const json = JSON.stringify(data.input ?? null);
      if (Buffer.byteLength(json) > max) {
        data.input = redactor.cut(json, max).text;
        state.truncated = true;
      }
    }
    if (state.truncated) data.truncated = true;
    return { type: event.type, data } as E;
  }
}

/** A copy of `v` with `f` applied to every string in it (object keys included). */
function walk(v: unknown, f: (s: string) => string): unknown {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((x) => walk(x, f));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [f(k), walk(x, f)]));
  }
  return v;
}

function notice(limit: LimitHit, limits: RunLimits): string {
  const setting = LIMIT_SETTINGS[limit];
  switch (limit) {
    case 'max_line_bytes':
      return `A line of the agent's output was longer than ${limits.maxLineBytes} bytes (${setting}): its start was kept, the rest dropped; the lines after it are read as usual. This is said once per run.`;
    case 'max_events':
      return `The run reached ${limits.maxEvents} events (${setting}): later events are not stored, except the run's end. Usage is still counted and the run goes on.`;
    case 'max_stream_bytes':
      return `The run's events reached ${limits.maxStreamBytes} bytes (${setting}): later events are not stored, except the run's end. Usage is still counted and the run goes on.`;
  }
}
