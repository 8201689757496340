import type { EventStreamStore } from '../events/stream-store.js';
import {
  emptyUsage,
  type NewEvent,
  type RunWarning,
  type StoredEvent,
  type UsageData,
  type UsageTotals,
} from '../events/types.js';
import { Redactor } from '../tenancy/redact.js';

/**
 * Appends one attempt's events in order (each append waits for the one before), each marked with
 * the attempt, and keeps the run's usage totals: this attempt's and its earlier attempts'.
 */
export class RunEventSink {
  private chain: Promise<unknown> = Promise.resolve();
  private failed: unknown;
  /** Usage per attempt: the provider billed every attempt, finished or not. */
  private readonly tallies = new Map<number, AttemptUsage>();
  private readonly warned: RunWarning[] = [];

  private secrets: Record<string, string> = {};
  private redacting = new Redactor({});

  constructor(
    private readonly store: EventStreamStore,
    private readonly runId: string,
    readonly attempt = 1,
  ) {}

  /** Values (by name) that must never be stored: every later event is redacted of them. */
  addRedactions(values: Readonly<Record<string, string>>): void {
    this.secrets = { ...this.secrets, ...values };
    this.redacting = new Redactor(this.secrets);
  }

  get redactor(): Redactor {
    return this.redacting;
  }

  emit(event: NewEvent): void {
    const ev = this.redacting.deep(event);
    if (ev.type === 'usage') this.tally(this.attempt).count(ev.data);
    if (ev.type === 'run.warning') this.warned.push(ev.data);
    this.chain = this.chain.then(() =>
      this.store.append(this.runId, ev, this.attempt).catch((err) => {
        this.failed ??= err;
      }),
    );
  }

  /** Waits for every emitted event to be stored; throws if any append failed. */
  async flush(): Promise<void> {
    await this.chain;
    if (this.failed) throw this.failed;
  }

  /** The warnings emitted through this sink, in order. */
  warnings(): RunWarning[] {
    return [...this.warned];
  }

  /** Counts the usage events of earlier attempts, as read back from the run's stream. */
  countEarlier(events: readonly StoredEvent[]): void {
    for (const ev of events) {
      const n = ev.attempt ?? 1;
      if (ev.type === 'usage' && n !== this.attempt) this.tally(n).count(ev.data);
    }
  }

  /** The sum over attempts of each attempt's totals (see AttemptUsage.totals). */
  totals(): UsageTotals {
    const sum = emptyUsage();
    for (const t of this.tallies.values()) {
      const a = t.totals();
      sum.input_tokens += a.input_tokens;
      sum.output_tokens += a.output_tokens;
      sum.cache_read_tokens += a.cache_read_tokens;
      sum.cache_write_tokens += a.cache_write_tokens;
      if (a.cost_usd !== null) sum.cost_usd = (sum.cost_usd ?? 0) + a.cost_usd;
      sum.cost_estimated ||= a.cost_estimated;
    }
    return sum;
  }

  private tally(attempt: number): AttemptUsage {
    const known = this.tallies.get(attempt);
    if (known) return known;
    const t = new AttemptUsage();
    this.tallies.set(attempt, t);
    return t;
  }
}

/** One attempt's usage, as the gateway measured it and as the agent reported it. */
class AttemptUsage {
  private readonly gateway = emptyUsage();
  private readonly agent = emptyUsage();
  private readonly script = emptyUsage();
  private sawGateway = false;

  /**
   * The agent's tokens as the gateway measured them when it saw any, else as the agent reported
   * them; cost as the agent reported it, else estimated from the price table (and marked so), else
   * unknown. The runbook's own scripts' calls (measured by the gateway, priced from the table) are
   * added on top.
   */
  totals(): UsageTotals {
    const tokens = this.sawGateway ? this.gateway : this.agent;
    const reported = this.agent.cost_usd;
    const estimate = this.sawGateway ? this.gateway.cost_usd : null;
    const agentCost = reported ?? estimate;
    const scriptCost = this.script.cost_usd;
    return {
      input_tokens: tokens.input_tokens + this.script.input_tokens,
      output_tokens: tokens.output_tokens + this.script.output_tokens,
      cache_read_tokens: tokens.cache_read_tokens + this.script.cache_read_tokens,
      cache_write_tokens: tokens.cache_write_tokens + this.script.cache_write_tokens,
      cost_usd: agentCost === null && scriptCost === null ? null : (agentCost ?? 0) + (scriptCost ?? 0),
      cost_estimated: (reported === null && estimate !== null) || scriptCost !== null,
    };
  }

  count(u: UsageData): void {
    const t = u.source === 'script' ? this.script : u.source === 'gateway' ? this.gateway : this.agent;
    if (u.source === 'gateway') this.sawGateway = true;
    t.input_tokens += u.input_tokens;
    t.output_tokens += u.output_tokens;
    t.cache_read_tokens += u.cache_read_tokens;
    t.cache_write_tokens += u.cache_write_tokens;
    if (u.cost_usd !== undefined) t.cost_usd = (t.cost_usd ?? 0) + u.cost_usd;
  }
}
