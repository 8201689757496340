import type { EventStreamStore } from '../events/stream-store.js';
import {
  emptyUsage,
  type NewEvent,
  type RunWarning,
  type UsageData,
  type UsageTotals,
} from '../events/types.js';
import { Redactor } from '../tenancy/redact.js';

/** Appends one run's events in order (each append waits for the one before), and keeps the usage totals. */
export class RunEventSink {
  private chain: Promise<unknown> = Promise.resolve();
  private failed: unknown;
  private readonly gateway = emptyUsage();
  private readonly agent = emptyUsage();
  private readonly script = emptyUsage();
  private sawGateway = false;
  private readonly warned: RunWarning[] = [];

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
    if (ev.type === 'run.warning') this.warned.push(ev.data);
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

  /** The warnings emitted through this sink, in order. */
  warnings(): RunWarning[] {
    return [...this.warned];
  }

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

  private count(u: UsageData): void {
    const t = u.source === 'script' ? this.script : u.source === 'gateway' ? this.gateway : this.agent;
    if (u.source === 'gateway') this.sawGateway = true;
    t.input_tokens += u.input_tokens;
    t.output_tokens += u.output_tokens;
    t.cache_read_tokens += u.cache_read_tokens;
    t.cache_write_tokens += u.cache_write_tokens;
    if (u.cost_usd !== undefined) t.cost_usd = (t.cost_usd ?? 0) + u.cost_usd;
  }
}
