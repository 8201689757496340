/**
 * A collection's budget settings, managed with one of its API keys: the budget of a run that
 * names none (held to the operator's maximum) and a daily spend limit. The answer also shows the
 * maximum and what the collection spent today, so a client sees why a run would be refused.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { budgetSettingsPatchSchema } from '../../tenancy/budgets.js';
import { collectionOf } from '../auth.js';
import type { AppDeps } from '../deps.js';
import { errorEnvelopeSchema } from '../schemas.js';

const settingsView = z.object({
  collection: z.string(),
  default_max_cost_usd: z.number().nullable(),
  default_max_tokens: z.number().nullable(),
  daily_spend_limit_usd: z.number().nullable(),
  server_max_cost_usd: z.number().describe('RUN_MAX_COST_USD: no run may have a larger cost budget'),
  server_max_tokens: z.number().describe('RUN_MAX_TOKENS: no run may have a larger token budget'),
  spent_today_usd: z
    .number()
    .describe('What the collection’s runs cost today (UTC), as the gateway priced them'),
  resets_at: z.string().describe('When today’s spend starts again from zero (the next UTC midnight)'),
});

export function collectionSettingsRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const max = deps.defaults.budget;

  const view = async (collection: string) => {
    const [settings, today] = await Promise.all([
      deps.tenancy.getBudgetSettings(collection),
      deps.tenancy.spendToday(collection),
    ]);
    return {
      collection,
      ...settings,
      server_max_cost_usd: max.maxCostUsd,
      server_max_tokens: max.maxTokens,
      spent_today_usd: Math.round(today.usd * 1e6) / 1e6,
      resets_at: today.resetsAt.toISOString(),
    };
  };

  r.get(
    '/v1/collection/settings',
    {
      schema: {
        summary: 'Your collection’s budget settings, the server’s maximum, and today’s spend',
        tags: ['collection'],
        response: { 200: settingsView },
      },
    },
    async (req) => view(collectionOf(req)),
  );

  r.patch(
    '/v1/collection/settings',
    {
      schema: {
        summary:
          'Change your collection’s budget settings (a number sets, null clears, a field left out is kept)',
        tags: ['collection'],
        body: budgetSettingsPatchSchema,
        response: { 200: settingsView, 400: errorEnvelopeSchema },
      },
    },
    async (req) => {
      const collection = collectionOf(req);
      await deps.tenancy.patchBudgetSettings(collection, req.body, max);
      return view(collection);
    },
  );
}
