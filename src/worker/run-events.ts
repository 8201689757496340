import type { EventStreamStore } from '../events/stream-store.js';
import { emptyUsage, type NewEvent, type UsageData, type UsageTotals } from '../events/types.js';
import { Redactor } from '../tenancy/redact.js';

/** Appends one run's events in order (each append waits for the one before), and keeps the usage totals. */
export class RunEventSink {
  private chain: Promise<unknown> = Promise.resolve();
  private failed: unknown;
  private readonly gateway = emptyUsage();
  private readonly agent = emptyUsage();
  private sawGateway = false;

  private secrets: Record<string, string> = {};
  private redacting = new Redactor({});

  constructor(
    private readonly store: EventStreamStore,
    private readonly runId: string,
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
    if (ev.type === 'usage') this.count(ev.data);
    this.chain = this.chain.then(() =>
      this.store.append(this.runId, ev).catch((err) => {
        this.failed ??= err;
      }),
    );
  }

  /** Waits for every emitted event to be stored; throws if any append failed. */
  async flush(): Promise<void> {
    await this.chain;
    if (this.failed) throw this.failed;
  }

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

  private count(u: UsageData): void {
    const t = u.source === 'gateway' ? this.gateway : this.agent;
    if (u.source === 'gateway') this.sawGateway = true;
    t.input_tokens += u.input_tokens;
    t.output_tokens += u.output_tokens;
    t.cache_read_tokens += u.cache_read_tokens;
    t.cache_write_tokens += u.cache_write_tokens;
    if (u.cost_usd !== undefined) t.cost_usd = (t.cost_usd ?? 0) + u.cost_usd;
  }
}
