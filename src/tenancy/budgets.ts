import type { Redis } from 'ioredis';
import { z } from 'zod';
import { badRequest } from '../errors.js';
import type { TenancyKeys } from './keys.js';

/**
 * A collection's budget settings and its daily spend. Settings: the budget of a run that names
 * none (within the operator's maximum), and a daily spend limit past which no run is accepted
 * until the next UTC day. Spend: what the gateway priced, per UTC day, in micro-dollars.
 */
export interface BudgetSettings {
  default_max_cost_usd: number | null;
  default_max_tokens: number | null;
  daily_spend_limit_usd: number | null;
}

const FIELDS = ['default_max_cost_usd', 'default_max_tokens', 'daily_spend_limit_usd'] as const;

/** A change: a number sets, null clears, a field left out is kept. */
export const budgetSettingsPatchSchema = z.strictObject({
  default_max_cost_usd: z
    .number({ error: 'must be a dollar amount or null' })
    .positive({ error: 'must be above 0' })
    .nullable()
    .optional()
    .describe('The budget in USD of a run that sets no jetty.max_cost_usd; null: the server maximum'),
  default_max_tokens: z
    .number({ error: 'must be a whole number of tokens or null' })
    .int({ error: 'must be a whole number of tokens' })
    .positive({ error: 'must be above 0' })
    .nullable()
    .optional()
    .describe('The input + output tokens of a run that sets no jetty.max_tokens; null: the server maximum'),
  daily_spend_limit_usd: z
    .number({ error: 'must be a dollar amount or null' })
    .positive({ error: 'must be above 0' })
    .max(1_000_000_000, { error: 'must be at most 1000000000' })
    .nullable()
    .optional()
    .describe('USD the collection may spend per UTC day; a run submitted past it gets 429; null: no limit'),
});
export type BudgetSettingsPatch = z.infer<typeof budgetSettingsPatchSchema>;

/** The operator's maximum of one run, with the variables that set it (for messages). */
export interface BudgetMaxima {
  maxCostUsd: number;
  maxTokens: number;
}

/** Spend keys live a little past their day, for a look back; nothing needs them longer. */
const SPEND_TTL_SEC = 3 * 24 * 3600;

export function utcDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

/** The start of the next UTC day: when a day's spend limit lets runs in again. */
export function nextUtcDay(at: Date): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate() + 1));
}

export class CollectionBudgets {
  constructor(
    private readonly redis: Redis,
    private readonly keys: TenancyKeys,
  ) {}

  async settings(collection: string): Promise<BudgetSettings> {
    const stored = await this.redis.hmget(this.keys.budgetSettings(collection), ...FIELDS);
    const out: BudgetSettings = {
      default_max_cost_usd: null,
      default_max_tokens: null,
      daily_spend_limit_usd: null,
    };
    FIELDS.forEach((f, i) => {
      const v = stored[i];
      out[f] = v === null || v === undefined ? null : Number(v);
    });
    return out;
  }

  /** Applies a checked change; a default above the operator's maximum is a 400 naming it. */
  async patch(collection: string, patch: unknown, maxima: BudgetMaxima): Promise<BudgetSettings> {
    const parsed = budgetSettingsPatchSchema.safeParse(patch);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.join('.') || null;
      throw badRequest(`${field ?? 'body'}: ${issue?.message ?? 'invalid'}.`, field);
    }
    const p = parsed.data;
    if (p.default_max_cost_usd != null && p.default_max_cost_usd > maxima.maxCostUsd) {
      throw badRequest(
        `default_max_cost_usd is $${p.default_max_cost_usd}; this server allows a run at most $${maxima.maxCostUsd} (RUN_MAX_COST_USD). Set it at or below that.`,
        'default_max_cost_usd',
        'budget_over_maximum',
      );
    }
    if (p.default_max_tokens != null && p.default_max_tokens > maxima.maxTokens) {
      throw badRequest(
        `default_max_tokens is ${p.default_max_tokens}; this server allows a run at most ${maxima.maxTokens} tokens (RUN_MAX_TOKENS). Set it at or below that.`,
        'default_max_tokens',
        'budget_over_maximum',
      );
    }
    const key = this.keys.budgetSettings(collection);
    const multi = this.redis.multi();
    for (const f of FIELDS) {
      const v = p[f];
      if (v === null) multi.hdel(key, f);
      else if (v !== undefined) multi.hset(key, f, String(v));
    }
    await multi.exec();
    return this.settings(collection);
  }

  /** Adds what one model call cost to the collection's spend of that UTC day. */
  async addSpend(collection: string, usd: number, at: Date): Promise<void> {
    const micros = Math.round(usd * 1_000_000);
    if (!(micros > 0)) return;
    const key = this.keys.spend(collection, utcDay(at));
    await this.redis.multi().incrby(key, micros).expire(key, SPEND_TTL_SEC).exec();
  }

  /** USD the collection's runs spent on the UTC day of `at`. */
  async spentOn(collection: string, at: Date): Promise<number> {
    const v = await this.redis.get(this.keys.spend(collection, utcDay(at)));
    return v === null ? 0 : Number(v) / 1_000_000;
  }
}
