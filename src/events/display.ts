import type { NetConnectData, UsageData } from './types.js';

/**
 * How a person sees a run's events, shared by the CLI and the web page (plain TypeScript: no Node
 * or DOM types): one short line per tool call, and the live usage totals.
 */

/** The input fields that say what a tool call does, most telling first (across the five CLIs). */
const TELLING = ['command', 'cmd', 'file_path', 'path', 'pattern', 'url', 'query', 'description', 'prompt'];

/** Whitespace collapsed, cut at `max` characters with an ellipsis. */
export function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, Math.max(0, max - 1))}…` : flat;
}

/** "Bash: ls -la /app/results", from a tool call's name and input. */
export function toolCallLine(name: string, input: unknown, max = 100): string {
  return input === undefined || input === null ? name : `${name}: ${shortInput(input, max)}`;
}

function shortInput(input: unknown, max: number): string {
  if (typeof input === 'string') return oneLine(input, max);
  if (typeof input !== 'object') return oneLine(String(input), max);
  const o = input as Record<string, unknown>;
  const key =
    TELLING.find((k) => typeof o[k] === 'string') ?? Object.keys(o).find((k) => typeof o[k] === 'string');
  if (key !== undefined) {
    const v = o[key];
    // A shell command that is an argv array reads better joined.
    return oneLine(Array.isArray(v) ? v.join(' ') : String(v), max);
  }
  if (Array.isArray(o.command)) return oneLine(o.command.map(String).join(' '), max);
  return oneLine(JSON.stringify(input) ?? '', max);
}

/** 0:07, 3:05, 1:02:03 */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** 850ms, 4.2s, 3m05s */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  return `${m}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}s`;
}

export function formatCost(usd: number | null | undefined, estimated = false): string {
  if (usd === null || usd === undefined) return '—';
  const s = usd >= 1 ? usd.toFixed(2) : usd >= 0.01 ? usd.toFixed(3) : usd.toFixed(4);
  return `${estimated ? '~' : ''}$${s}`;
}

export function formatTokens(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/**
 * Usage totals while a run goes on, counted as the worker counts them for the record: tokens as
 * the gateway measured them when it saw any, else as the agent reported; cost as the agent
 * reported it, else the gateway's estimate.
 */
export class UsageTally {
  private readonly gateway = { input: 0, output: 0, cost: null as number | null };
  private readonly agent = { input: 0, output: 0, cost: null as number | null };
  private sawGateway = false;

  add(u: Partial<UsageData>): void {
    const t = u.source === 'gateway' ? this.gateway : this.agent;
    if (u.source === 'gateway') this.sawGateway = true;
    t.input += u.input_tokens ?? 0;
    t.output += u.output_tokens ?? 0;
    if (typeof u.cost_usd === 'number') t.cost = (t.cost ?? 0) + u.cost_usd;
  }

  get tokens(): number {
    const t = this.sawGateway ? this.gateway : this.agent;
    return t.input + t.output;
  }

  get costUsd(): number | null {
    return this.agent.cost ?? (this.sawGateway ? this.gateway.cost : null);
  }

  get costEstimated(): boolean {
    return this.agent.cost === null && this.costUsd !== null;
  }
}

/**
 * One line for a run's `evaluation` (decided by the worker; its exact shape belongs to the
 * evaluation feature): the verdict, the score and the summary when it has them, else its JSON.
 */
export function evaluationSummary(evaluation: unknown, max = 200): string {
  if (evaluation === null || evaluation === undefined) return '';
  if (typeof evaluation !== 'object') return oneLine(String(evaluation), max);
  const e = evaluation as Record<string, unknown>;
  const parts: string[] = [];
  const verdict = e.verdict ?? e.status ?? e.result;
  // `passed` decides; `status` says more only when there is no verdict (missing, error).
  if (typeof e.passed === 'boolean') parts.push(e.passed ? 'passed' : 'not passed');
  else if (typeof verdict === 'string') parts.push(verdict);
  else if (typeof e.success === 'boolean') parts.push(e.success ? 'passed' : 'not passed');
  if (typeof e.score === 'number') parts.push(`score ${e.score}`);
  const said = e.summary ?? e.reason ?? e.message;
  if (typeof said === 'string' && said) parts.push(said);
  return oneLine(parts.length ? parts.join(' · ') : JSON.stringify(evaluation), max);
}

/**
 * One line for a connection through the egress proxy, e.g.
 * `net: pypi.org:443 allowed, 12.4 KiB down, 0.3s` or `net: 169.254.169.254:80 refused: …`.
 */
export function netConnectLine(d: NetConnectData, max = 240): string {
  const target = `${d.method ? `${d.method} ` : ''}${d.host}:${d.port}`;
  const status = d.status !== undefined ? ` HTTP ${d.status},` : '';
  if (d.outcome !== 'allowed')
    return oneLine(`net: ${target} ${d.outcome}: ${d.reason ?? d.code ?? ''}`, max);
  const cut = d.code ? ` (cut: ${d.reason ?? d.code})` : '';
  const line = `net: ${target} allowed,${status} ${formatBytes(d.bytes_up)} up, ${formatBytes(d.bytes_down)} down, ${formatDuration(d.ms)}${cut}`;
  return oneLine(line, max);
}
