import type { EventStreamStore } from '../events/stream-store.js';
import {
  emptyUsage,
  type NewEvent,
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
  private sawGateway = false;

  /**
   * Tokens as the gateway measured them when it saw any, else as the agent reported them. Cost as
   * the agent reported it; else estimated from the price table (and marked so); else unknown.
   */
  totals(): UsageTotals {
    const tokens = this.sawGateway ? this.gateway : this.agent;
    const reported = this.agent.cost_usd;
    const estimate = this.sawGateway ? this.gateway.cost_usd : null;
    return {
      ...tokens,
      cost_usd: reported ?? estimate,
      cost_estimated: reported === null && estimate !== null,
    };
  }

  count(u: UsageData): void {
    const t = u.source === 'gateway' ? this.gateway : this.agent;
    if (u.source === 'gateway') this.sawGateway = true;
    t.input_tokens += u.input_tokens;
    t.output_tokens += u.output_tokens;
    t.cache_read_tokens += u.cache_read_tokens;
    t.cache_write_tokens += u.cache_write_tokens;
    if (u.cost_usd !== undefined) t.cost_usd = (t.cost_usd ?? 0) + u.cost_usd;
  }
}
