import { DEFAULT_RUN_LIMITS, type LimitHit, type RunLimits } from '../events/limits.js';
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
import { type Admitted, EventLimiter } from './event-limiter.js';

export interface RunEventSinkOptions {
  limits?: RunLimits;
  /** Called (in order with the events) each time the run reaches a new limit, with all it reached. */
  onLimit?: (hits: readonly LimitHit[]) => Promise<void>;
  /** The attempt whose events this sink writes (1 for the first). */
  attempt?: number;
}

/**
 * Appends one attempt's events in order (each append waits for the one before), each marked with
 * the attempt, and keeps the run's usage totals: this attempt's and its earlier attempts'. Every
 * event is redacted and cut to the run's limits here, the one place all of them pass.
 */
export class RunEventSink {
  private chain: Promise<unknown> = Promise.resolve();
  private failed: unknown;
  /** Usage per attempt: the provider billed every attempt, finished or not. */
  private readonly tallies = new Map<number, AttemptUsage>();
  private readonly warned: RunWarning[] = [];

  private secrets: Record<string, string> = {};
  private redacting = new Redactor({});
  private readonly limiter: EventLimiter;
  private readonly onLimit: RunEventSinkOptions['onLimit'];
  readonly attempt: number;

  constructor(
    private readonly store: Pick<EventStreamStore, 'append'>,
    private readonly runId: string,
    opts: RunEventSinkOptions = {},
  ) {
    this.limiter = new EventLimiter(opts.limits ?? DEFAULT_RUN_LIMITS);
    this.onLimit = opts.onLimit;
    this.attempt = opts.attempt ?? 1;
  }

  /** Values (by name) that must never be stored: every later event is redacted of them. */
  addRedactions(values: Readonly<Record<string, string>>): void {
    this.secrets = { ...this.secrets, ...values };
    this.redacting = new Redactor(this.secrets);
  }

  get redactor(): Redactor {
    return this.redacting;
  }

  /** The limits this run has reached, for its record. */
  get limitsHit(): LimitHit[] {
    return [...this.limiter.limitsHit];
  }

  emit(event: NewEvent): void {
    // Counted even when the event is not stored: the provider billed it all the same.
    if (event.type === 'usage') this.tally(this.attempt).count(event.data);
    const admitted = this.limiter.admit(event, this.redacting);
    for (const { event: ev } of admitted) if (ev.type === 'run.warning') this.warned.push(ev.data);
    this.enqueue(admitted);
  }

  /** A line of the sandbox's output was cut at the line limit: said once per run. */
  lineCut(): void {
    this.enqueue(this.limiter.reached('max_line_bytes'));
  }

  /**
   * `event` as it will be stored and recorded (redacted, cut to the limits), for what leaves the
   * worker another way than `emit`: the terminal event and the record's final text and error.
   */
  shape<E extends NewEvent>(event: E): E {
    return this.limiter.shape(event, this.redacting);
  }

  /** The agent's words as an event would keep them (the record's final text). */
  shapeMessage(text: string): string {
    return this.shape({ type: 'agent.message', data: { text } }).data.text;
  }

  private enqueue(admitted: Admitted[]): void {
    for (const { event, always } of admitted) {
      const notice = event.type === 'run.warning' && always;
      this.chain = this.chain
        .then(async () => {
          const id = await this.store.append(this.runId, event, { always, attempt: this.attempt });
          // The stream's own cap said no (the run's stream already held its limit, e.g. from an
          // earlier attempt): from now on this run stores no more, and says so once.
          if (id === null) this.enqueue(this.limiter.reached('max_events'));
          if (notice) await this.onLimit?.(this.limiter.limitsHit);
        })
        .catch((err) => {
          this.failed ??= err;
        });
    }
  }

  /** Waits for every emitted event to be stored; throws if any append failed. */
  async flush(): Promise<void> {
    // A link may add another (a refused append adds its notice): wait until none was added.
    for (let seen = this.chain; ; seen = this.chain) {
      await seen;
      if (seen === this.chain) break;
    }
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
   * unknown. The runbook's own scripts' calls and the judge's (measured by the gateway, priced
   * from the table) are added on top.
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
    // The judge's calls are the server's, not the agent's: added on top, like the scripts'.
    const extra = u.source === 'script' || u.source === 'judge';
    const t = extra ? this.script : u.source === 'gateway' ? this.gateway : this.agent;
    if (u.source === 'gateway') this.sawGateway = true;
    t.input_tokens += u.input_tokens;
    t.output_tokens += u.output_tokens;
    t.cache_read_tokens += u.cache_read_tokens;
    t.cache_write_tokens += u.cache_write_tokens;
    if (u.cost_usd !== undefined) t.cost_usd = (t.cost_usd ?? 0) + u.cost_usd;
  }
}
