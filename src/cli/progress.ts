import {
  formatBytes,
  formatCost,
  formatDuration,
  formatElapsed,
  formatTokens,
  netConnectLine,
  oneLine,
  toolCallLine,
  UsageTally,
} from '../events/display.js';
import type { NetConnectData, UsageTotals } from '../events/types.js';
import type { RunEvent } from './client.js';

export interface Terminal {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Plain mode prints the status line at most this often (on usage), so a log stays readable. */
const PLAIN_STATUS_EVERY_MS = 5000;

/**
 * A run's events as a person wants to read them: the agent's words, one line per tool call,
 * warnings, artifacts, and a status line (elapsed, tokens, cost). On a terminal the status line
 * stays at the bottom and is redrawn in place; otherwise it is a plain line now and then, so a CI
 * log or a pipe gets no control characters.
 */
export class ProgressView {
  private readonly usage = new UsageTally();
  private status = 'pending';
  private startMs: number | undefined;
  /** Agent text received but not yet printed: only whole lines are printed while it streams. */
  private pending = '';
  private statusShown = false;
  /** Lines held back while a question is on screen (Ctrl-C's prompt), printed after it. */
  private held: string[] | null = null;
  private lastPlainStatus = 0;
  private readonly tty: boolean;
  private readonly color: boolean;

  constructor(
    private readonly out: Terminal,
    opts: { color?: boolean } = {},
  ) {
    this.tty = out.isTTY === true;
    this.color = this.tty && (opts.color ?? true);
  }

  event(ev: RunEvent): void {
    this.startMs ??= ev.ts;
    const d = ev.data;
    switch (ev.type) {
      case 'run.queued':
        this.line(`queued: ${str(d.agent)} · ${str(d.model)} · ${str(d.provider)}`, 'dim');
        break;
      case 'run.started':
        this.status = 'running';
        this.line(`started: sandbox ${str(d.sandbox_id).slice(0, 12)} · ${str(d.runtime_version)}`, 'dim');
        break;
      case 'agent.message':
        this.text(str(d.text), d.delta === true);
        break;
      case 'agent.reasoning':
        this.line(`(thinking) ${oneLine(str(d.text), this.width(12))}`, 'dim');
        break;
      case 'tool.call':
        this.line(`→ ${toolCallLine(str(d.name), d.input, this.width(2))}`);
        break;
      case 'tool.result':
        if (d.is_error === true) this.line(`  ✗ ${oneLine(str(d.output), this.width(4))}`, 'red');
        break;
      case 'run.warning':
        this.line(`! ${str(d.code)}: ${str(d.message)}`, 'yellow');
        break;
      case 'net.connect':
        this.line(
          netConnectLine(d as unknown as NetConnectData, this.width(0)),
          d.outcome === 'allowed' ? 'dim' : 'yellow',
        );
        break;
      case 'artifact':
        this.line(`+ ${str(d.path)} (${formatBytes(Number(d.size) || 0)})`);
        break;
      case 'usage':
        this.usage.add(d);
        this.plainStatus(ev.ts);
        break;
      case 'run.completed':
      case 'run.failed':
      case 'run.cancelled':
        this.end(ev);
        break;
      default:
        break; // log lines and future event types: --json shows them
    }
  }

  /** A line of the CLI's own (a reconnection, a download) between the run's lines. */
  note(text: string): void {
    this.line(text, 'dim');
  }

  /** While paused nothing is drawn (a prompt is on screen); lines wait and come out on resume. */
  pause(on: boolean): void {
    if (on) {
      this.clearStatus();
      this.held ??= [];
      return;
    }
    const held = this.held ?? [];
    this.held = null;
    for (const line of held) this.emit(line);
    this.tick();
  }

  /** Redraws the status line (a terminal only): the CLI calls it every second for the clock. */
  tick(): void {
    if (!this.tty || this.isEnded() || this.held) return;
    this.clearStatus();
    this.drawStatus();
  }

  /** Leaves the terminal as it found it: the status line gone, the cursor on a fresh line. */
  close(): void {
    this.flushText();
    this.clearStatus();
  }

  private end(ev: RunEvent): void {
    const d = ev.data;
    this.status = ev.type.slice(4);
    // The run's own totals (as the record has them) when the event carries them.
    const u = d.usage as Partial<UsageTotals> | undefined;
    const tokens = u ? (u.input_tokens ?? 0) + (u.output_tokens ?? 0) : this.usage.tokens;
    const cost = u
      ? formatCost(u.cost_usd, u.cost_estimated)
      : formatCost(this.usage.costUsd, this.usage.costEstimated);
    const figures = `${formatDuration(d.duration_ms as number)} · ${formatTokens(tokens)} tokens · ${cost}`;
    if (ev.type === 'run.completed') this.line(`✓ completed in ${figures}`, 'green');
    else if (ev.type === 'run.cancelled')
      this.line(`■ cancelled after ${figures}: ${str(d.reason)}`, 'yellow');
    else {
      const e = (d.error ?? {}) as { code?: string; message?: string };
      this.line(`✗ failed after ${figures}: ${str(e.code)}: ${str(e.message)}`, 'red');
    }
    this.clearStatus();
  }

  private isEnded(): boolean {
    return ['completed', 'failed', 'cancelled'].includes(this.status);
  }

  private text(text: string, delta: boolean): void {
    this.pending += delta ? text : `${this.pending && !this.pending.endsWith('\n') ? '\n' : ''}${text}\n`;
    const cut = this.pending.lastIndexOf('\n');
    if (cut < 0) return;
    const whole = this.pending.slice(0, cut);
    this.pending = this.pending.slice(cut + 1);
    this.emit(whole);
  }

  private flushText(): void {
    if (!this.pending) return;
    const rest = this.pending;
    this.pending = '';
    this.emit(rest);
  }

  private line(text: string, style?: Style): void {
    this.flushText();
    this.emit(this.paint(text, style));
  }

  /** Prints whole lines above the status line, then redraws it. */
  private emit(text: string): void {
    if (this.held) {
      this.held.push(text);
      return;
    }
    this.clearStatus();
    this.out.write(`${text}\n`);
    if (this.tty && !this.isEnded()) this.drawStatus();
  }

  private plainStatus(now: number): void {
    if (this.tty) {
      this.tick();
      return;
    }
    if (now - this.lastPlainStatus < PLAIN_STATUS_EVERY_MS) return;
    this.lastPlainStatus = now;
    this.flushText();
    this.emit(this.statusText(now));
  }

  private statusText(now: number): string {
    const elapsed = this.startMs === undefined ? '0:00' : formatElapsed(now - this.startMs);
    return `· ${elapsed} ${this.status} · ${formatTokens(this.usage.tokens)} tokens · ${formatCost(this.usage.costUsd, this.usage.costEstimated)}`;
  }

  private drawStatus(): void {
    this.out.write(this.paint(oneLine(this.statusText(Date.now()), this.width(0)), 'dim'));
    this.statusShown = true;
  }

  private clearStatus(): void {
    if (!this.statusShown) return;
    this.out.write('\r\x1b[2K');
    this.statusShown = false;
  }

  /** Room on one terminal line after `used` columns (plain output gets a generous fixed width). */
  private width(used: number): number {
    return Math.max(20, (this.tty ? this.out.columns || 100 : 160) - used - 1);
  }

  private paint(text: string, style?: Style): string {
    if (!this.color || !style) return text;
    return `\x1b[${STYLES[style]}m${text}\x1b[0m`;
  }
}

type Style = 'dim' | 'red' | 'green' | 'yellow';
const STYLES: Record<Style, string> = { dim: '2', red: '31', green: '32', yellow: '33' };

function str(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
}
