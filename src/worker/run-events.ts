import { DEFAULT_RUN_LIMITS, type LimitHit, type RunLimits } from '../events/limits.js';
import type { EventStreamStore } from '../events/stream-store.js';
import { emptyUsage, type NewEvent, type UsageData, type UsageTotals } from '../events/types.js';
import { Redactor } from '../tenancy/redact.js';
import { type Admitted, EventLimiter } from './event-limiter.js';

export interface RunEventSinkOptions {
  limits?: RunLimits;
  /** Called (in order with the events) each time the run reaches a new limit, with all it reached. */
  onLimit?: (hits: readonly LimitHit[]) => Promise<void>;
}

/**
 * Appends one run's events in order (each append waits for the one before), and keeps the usage
 * totals. Every event is redacted and cut to the run's limits here, the one place all of them pass.
 */
export class RunEventSink {
  private chain: Promise<unknown> = Promise.resolve();
  private failed: unknown;
  private readonly gateway = emptyUsage();
  private readonly agent = emptyUsage();
  private sawGateway = false;

  private secrets: Record<string, string> = {};
  private redacting = new Redactor({});
  private readonly limiter: EventLimiter;
  private readonly onLimit: RunEventSinkOptions['onLimit'];

  constructor(
    private readonly store: Pick<EventStreamStore, 'append'>,
    private readonly runId: string,
    opts: RunEventSinkOptions = {},
  ) {
    this.limiter = new EventLimiter(opts.limits ?? DEFAULT_RUN_LIMITS);
    this.onLimit = opts.onLimit;
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
    if (event.type === 'usage') this.count(event.data);
    this.enqueue(this.limiter.admit(event, this.redacting));
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
      const notice = event.type === 'warning' && always;
      this.chain = this.chain
        .then(async () => {
          const id = await this.store.append(this.runId, event, { always });
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
