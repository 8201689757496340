import {
  formatBytes,
  formatCost,
  formatDuration,
  formatTokens,
  netConnectLine,
  toolCallLine,
  UsageTally,
} from '../events/display.js';
import type { NetConnectData } from '../events/types.js';

/**
 * A run's events as the entries of its timeline: streamed text joined into one message, each tool
 * call with its result folded into it, log lines grouped. Pure (no DOM), so it is tested alone;
 * run-view.ts draws what it returns.
 */
export interface TimelineEvent {
  id: string;
  type: string;
  ts: number;
  data: Record<string, unknown>;
}

export type Entry =
  | { key: number; kind: 'lifecycle'; text: string }
  | { key: number; kind: 'message' | 'reasoning'; text: string }
  | {
      key: number;
      kind: 'tool';
      callId: string;
      line: string;
      input: string;
      result?: { output: string; isError: boolean; truncated: boolean };
    }
  | { key: number; kind: 'warning'; text: string }
  | { key: number; kind: 'log'; lines: string[] }
  | { key: number; kind: 'artifact'; text: string }
  | { key: number; kind: 'end'; status: string; text: string }
  | { key: number; kind: 'overflow'; count: number };

/** An entry before it has its key (Omit applied to each member of the union). */
type Unkeyed<T> = T extends unknown ? Omit<T, 'key'> : never;
type NewEntry = Unkeyed<Entry>;
type ToolEntry = Extract<Entry, { kind: 'tool' }>;

const TERMINAL = ['run.completed', 'run.failed', 'run.cancelled'];
const str = (v: unknown) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

export class Timeline {
  readonly entries: Entry[] = [];
  readonly usage = new UsageTally();
  status: string | undefined;
  lastId: string | undefined;
  private applied = 0;
  private readonly tools = new Map<string, ToolEntry>();

  /** Past `maxEvents` events, only the end and the usage are still shown; an entry counts the rest. */
  constructor(private readonly maxEvents: number) {}

  /** Takes one event; returns the entry it added or changed (null when none shows). */
  apply(ev: TimelineEvent): Entry | null {
    if (ev.id) this.lastId = ev.id;
    if (ev.type === 'usage') {
      this.usage.add(ev.data);
      return null;
    }
    if (ev.type === 'run.started') this.status = 'running';
    if (!TERMINAL.includes(ev.type) && ++this.applied > this.maxEvents) return this.overflow();
    return this.entry(ev);
  }

  private entry(ev: TimelineEvent): Entry | null {
    const d = ev.data;
    switch (ev.type) {
      case 'run.queued':
        return this.add({
          kind: 'lifecycle',
          text: `queued: ${str(d.agent)} · ${str(d.model)} · ${str(d.provider)}`,
        });
      case 'run.started':
        return this.add({
          kind: 'lifecycle',
          text: `started in sandbox ${str(d.sandbox_id).slice(0, 12)} · ${str(d.runtime_version)}`,
        });
      case 'agent.message':
      case 'agent.reasoning':
        return this.text(
          ev.type === 'agent.message' ? 'message' : 'reasoning',
          str(d.text),
          d.delta === true,
        );
      case 'tool.call':
        return this.toolCall(d);
      case 'tool.result':
        return this.toolResult(d);
      case 'run.warning':
        return this.add({ kind: 'warning', text: `${str(d.code)}: ${str(d.message)}` });
      case 'log':
        return this.log(str(d.line));
      case 'net.connect':
        // Grouped with the log lines: one short line per connection through the egress proxy.
        return this.log(netConnectLine(d as unknown as NetConnectData));
      case 'artifact':
        return this.add({
          kind: 'artifact',
          text: `wrote ${str(d.path)} (${formatBytes(Number(d.size) || 0)})`,
        });
      default:
        return TERMINAL.includes(ev.type) ? this.end(ev) : null;
    }
  }

  private add(e: NewEntry): Entry {
    const entry = { ...e, key: this.entries.length } as Entry;
    this.entries.push(entry);
    return entry;
  }

  private text(kind: 'message' | 'reasoning', text: string, delta: boolean): Entry {
    const last = this.entries.at(-1);
    if (delta && last?.kind === kind) {
      last.text += text;
      return last;
    }
    return this.add({ kind, text });
  }

  private toolCall(d: Record<string, unknown>): Entry {
    const input = typeof d.input === 'string' ? d.input : JSON.stringify(d.input ?? null, null, 2);
    const e = this.add({
      kind: 'tool',
      callId: str(d.call_id),
      line: toolCallLine(str(d.name), d.input, 140),
      input,
    }) as ToolEntry;
    this.tools.set(e.callId, e);
    return e;
  }

  private toolResult(d: Record<string, unknown>): Entry {
    const result = { output: str(d.output), isError: d.is_error === true, truncated: d.truncated === true };
    const call = this.tools.get(str(d.call_id));
    if (call) {
      call.result = result;
      return call;
    }
    // A result whose call we never saw (it came before the page's first event): shown alone.
    return this.add({ kind: 'tool', callId: str(d.call_id), line: 'tool result', input: '', result });
  }

  private log(line: string): Entry {
    const last = this.entries.at(-1);
    if (last?.kind === 'log') {
      last.lines.push(line);
      return last;
    }
    return this.add({ kind: 'log', lines: [line] });
  }

  private end(ev: TimelineEvent): Entry {
    const d = ev.data;
    this.status = ev.type.slice(4);
    const u = (d.usage ?? {}) as {
      input_tokens?: number;
      output_tokens?: number;
      cost_usd?: number | null;
      cost_estimated?: boolean;
    };
    const figures = `${formatDuration(d.duration_ms as number)} · ${formatTokens((u.input_tokens ?? 0) + (u.output_tokens ?? 0))} tokens · ${formatCost(u.cost_usd, u.cost_estimated)}`;
    const e = (d.error ?? {}) as { code?: string; message?: string };
    const text =
      ev.type === 'run.completed'
        ? `completed in ${figures}`
        : ev.type === 'run.cancelled'
          ? `cancelled after ${figures}: ${str(d.reason)}`
          : `failed after ${figures}: ${str(e.code)}: ${str(e.message)}`;
    return this.add({ kind: 'end', status: this.status, text });
  }

  private overflow(): Entry {
    const last = this.entries.at(-1);
    if (last?.kind === 'overflow') {
      last.count++;
      return last;
    }
    return this.add({ kind: 'overflow', count: 1 });
  }
}
