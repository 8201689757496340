import { AppError, badRequest, quoted } from '../errors.js';
import { formatUsd } from '../providers/prices.js';
import type { NewRun } from '../queue/run-service.js';
import type { BudgetSettings } from '../tenancy/budgets.js';
import type { AppDeps } from './deps.js';
import type { ChatRequest } from './schemas.js';

/** What the pre-flight knows of the collection's budget: its settings and today's (UTC) spend. */
export interface BudgetContext {
  settings: BudgetSettings;
  spentTodayUsd: number;
  resetsAt: Date;
}

export async function budgetContext(deps: AppDeps, collection: string): Promise<BudgetContext> {
  const [settings, today] = await Promise.all([
    deps.tenancy.getBudgetSettings(collection),
    deps.tenancy.spendToday(collection),
  ]);
  return { settings, spentTodayUsd: today.usd, resetsAt: today.resetsAt };
}

/**
 * The run's budget: the request's figure, else the collection's default, else the operator's
 * maximum; a request above the maximum is a 400 naming it. A collection past its daily spend
 * limit gets a 429 saying when the limit resets, and nothing is queued.
 */
export function planBudget(
  jetty: NonNullable<ChatRequest['jetty']>,
  maxima: AppDeps['defaults']['budget'],
  ctx: BudgetContext,
  collection: string,
  now: Date = new Date(),
): NewRun['budget'] {
  if (jetty.max_cost_usd !== undefined && jetty.max_cost_usd > maxima.maxCostUsd) {
    throw badRequest(
      `jetty.max_cost_usd is $${jetty.max_cost_usd}; this server allows a run at most $${maxima.maxCostUsd} (RUN_MAX_COST_USD). Ask for $${maxima.maxCostUsd} or less.`,
      'jetty.max_cost_usd',
      'budget_over_maximum',
    );
  }
  if (jetty.max_tokens !== undefined && jetty.max_tokens > maxima.maxTokens) {
    throw badRequest(
      `jetty.max_tokens is ${jetty.max_tokens}; this server allows a run at most ${maxima.maxTokens} tokens (RUN_MAX_TOKENS). Ask for ${maxima.maxTokens} or fewer.`,
      'jetty.max_tokens',
      'budget_over_maximum',
    );
  }
  checkDailyLimit(ctx, collection, now);
  const { settings } = ctx;
  // A default set before the operator lowered the maximum is held to the maximum.
  return {
    maxCostUsd: jetty.max_cost_usd ?? Math.min(settings.default_max_cost_usd ?? Infinity, maxima.maxCostUsd),
    maxTokens: jetty.max_tokens ?? Math.min(settings.default_max_tokens ?? Infinity, maxima.maxTokens),
  };
}

/** A 429 (with retry-after) for a collection whose spend today reached its daily limit. */
export function checkDailyLimit(ctx: BudgetContext, collection: string, now: Date = new Date()): void {
  const limit = ctx.settings.daily_spend_limit_usd;
  if (limit === null || ctx.spentTodayUsd < limit) return;
  const waitSec = Math.max(1, Math.ceil((ctx.resetsAt.getTime() - now.getTime()) / 1000));
  throw new AppError(
    `Collection ${quoted(collection)} has spent ${formatUsd(ctx.spentTodayUsd)} today (UTC), reaching its daily spend limit of ${formatUsd(limit)} (daily_spend_limit_usd). The limit resets at ${ctx.resetsAt.toISOString()} (in ${waitSec} s); or raise it with PATCH /v1/collection/settings.`,
    {
      status: 429,
      type: 'rate_limit_error',
      code: 'daily_spend_limit_reached',
      param: null,
      headers: { 'retry-after': String(waitSec) },
    },
  );
}
