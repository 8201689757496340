import type { UsageData } from '../events/types.js';
import { estimateCost, formatUsd as usd } from '../providers/prices.js';

/**
 * A run's budget as the gateway keeps it: what every model call of the run spent (the CLI's and
 * any script's alike, since all of them come through the gateway with the run's token), checked
 * before each next call. A call under way is never cut; the one after the budget is spent is refused.
 */
export interface BudgetLimits {
  /** USD, priced with the price table; null: no cost cap. */
  maxCostUsd: number | null;
  /** Input + output tokens as the gateway measures them (cache reads and writes not counted); null: no cap. */
  maxTokens: number | null;
}

export interface BudgetSpend {
  /** Input + output tokens. */
  tokens: number;
  /** USD of the calls whose model has a price. */
  costUsd: number;
  /** Calls whose model has no price: their cost is unknown, so the cost cap cannot see them. */
  unpricedCalls: number;
}

export interface BudgetExceeded {
  /** The request field that set the limit that was reached. */
  limit: 'max_cost_usd' | 'max_tokens';
  budget: number;
  spent: BudgetSpend;
  /** For the run record: names the figure and the field that raises it. */
  message: string;
  /**
   * For the CLI, in the refusal's body. Worded so that no CLI's error classifier reads it as a
   * context overflow or a rate limit (Hermes matches "max_tokens", "token limit", "quota", "rate
   * limit"... and would compress and retry): the refusal must read as final.
   */
  wire: string;
}

export class RunBudget {
  private readonly spend: BudgetSpend = { tokens: 0, costUsd: 0, unpricedCalls: 0 };
  private hit: BudgetExceeded | null = null;
  /** Model calls refused since the budget ran out. */
  refusals = 0;

  constructor(
    readonly limits: BudgetLimits,
    /** Told once, at the first refusal (the worker ends the run on it). */
    private readonly onExceeded?: (e: BudgetExceeded) => void,
  ) {}

  /** Adds what one model call reported. */
  record(u: UsageData): void {
    this.spend.tokens += u.input_tokens + u.output_tokens;
    const cost = estimateCost(u);
    if (cost === undefined) this.spend.unpricedCalls++;
    else this.spend.costUsd += cost;
  }

  spent(): BudgetSpend {
    return { ...this.spend };
  }

  /** Before a model call: null lets it through; else the reason it is refused. */
  admit(): BudgetExceeded | null {
    const over = this.over();
    if (!over) return null;
    this.refusals++;
    if (!this.hit) {
      this.hit = over;
      this.onExceeded?.(over);
    }
    return over;
  }

  /** The first refusal, once a call has been refused; null while none has. */
  get exceeded(): BudgetExceeded | null {
    return this.hit;
  }

  private over(): BudgetExceeded | null {
    const { maxTokens, maxCostUsd } = this.limits;
    const spent = this.spent();
    if (maxTokens !== null && spent.tokens >= maxTokens) {
      return {
        limit: 'max_tokens',
        budget: maxTokens,
        spent,
        message: `The run's token budget is spent: it used ${count(spent.tokens)} tokens (input + output, as the gateway measured them) of its max_tokens of ${count(maxTokens)}${spent.costUsd > 0 ? `, costing ${usd(spent.costUsd)}` : ''}. Raise jetty.max_tokens (or the collection's default_max_tokens) for a run that needs more.`,
        wire: `${WIRE_HEAD}: it used ${count(spent.tokens)} tokens against its budget of ${count(maxTokens)}. ${WIRE_TAIL}`,
      };
    }
    if (maxCostUsd !== null && spent.costUsd >= maxCostUsd) {
      return {
        limit: 'max_cost_usd',
        budget: maxCostUsd,
        spent,
        message: `The run's cost budget is spent: it cost ${usd(spent.costUsd)} (the gateway's token counts at list prices) of its max_cost_usd of ${usd(maxCostUsd)}, in ${count(spent.tokens)} tokens. Raise jetty.max_cost_usd (or the collection's default_max_cost_usd) for a run that needs more.`,
        wire: `${WIRE_HEAD}: it cost ${usd(spent.costUsd)} against its budget of ${usd(maxCostUsd)}. ${WIRE_TAIL}`,
      };
    }
    return null;
  }
}

const WIRE_HEAD = "Jetty budget_exceeded: this run's budget is spent";
const WIRE_TAIL = 'The gateway refuses every further model call of this run; end the session.';

const count = (n: number): string => n.toLocaleString('en-US');
