/**
 * A collection's settings, managed with one of its API keys: the budget of a run that names none
 * (held to the operator's maximum), a daily spend limit, and its runs' network policy (within the
 * operator's). The answer also shows the server's maxima, what the collection spent today and
 * the policy its runs get, so a client sees why a run would be refused or narrowed.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { collectionCeiling, EGRESS_MODES } from '../../egress/policy.js';
import { budgetSettingsPatchSchema } from '../../tenancy/budgets.js';
import { egressSettingsPatchSchema } from '../../tenancy/egress-settings.js';
import { collectionOf } from '../auth.js';
import type { AppDeps } from '../deps.js';
import { errorEnvelopeSchema } from '../schemas.js';

const policyView = z.object({ mode: z.enum(EGRESS_MODES), allow: z.array(z.string()) });

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
  egress_policy: z
    .enum(EGRESS_MODES)
    .nullable()
    .describe('The collection’s own network policy; null: the server’s'),
  egress_allow: z.array(z.string()).describe('Its host patterns, under egress_policy allowlist'),
  server_egress: policyView.describe('EGRESS_POLICY and EGRESS_ALLOW: no run may reach beyond them'),
  effective_egress: policyView.describe(
    'What the collection’s runs get (a runbook’s `network` may narrow it further, never widen it)',
  ),
});

const settingsPatch = z.strictObject({
  ...budgetSettingsPatchSchema.shape,
  ...egressSettingsPatchSchema.shape,
});

export function collectionSettingsRoutes(app: FastifyInstance, deps: AppDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const max = deps.defaults.budget;
  const operator = deps.defaults.egress;

  const view = async (collection: string) => {
    const [settings, today, egress] = await Promise.all([
      deps.tenancy.getBudgetSettings(collection),
      deps.tenancy.spendToday(collection),
      deps.tenancy.getEgressSettings(collection),
    ]);
    return {
      collection,
      ...settings,
      server_max_cost_usd: max.maxCostUsd,
      server_max_tokens: max.maxTokens,
      spent_today_usd: Math.round(today.usd * 1e6) / 1e6,
      resets_at: today.resetsAt.toISOString(),
      ...egress,
      server_egress: operator,
      effective_egress: collectionCeiling(operator, egress),
    };
  };

  r.get(
    '/v1/collection/settings',
    {
      schema: {
        summary: 'Your collection’s budget and network settings, the server’s maxima, and today’s spend',
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
          'Change your collection’s budget and network settings (a value sets, null clears, a field left out is kept)',
        tags: ['collection'],
        body: settingsPatch,
        response: { 200: settingsView, 400: errorEnvelopeSchema },
      },
    },
    async (req) => {
      const collection = collectionOf(req);
      const { egress_policy, egress_allow, ...budget } = req.body;
      // Both parts are checked before either is written: a refused change changes nothing.
      const egress = await deps.tenancy.checkEgressPatch(
        collection,
        { egress_policy, egress_allow },
        operator,
      );
      await deps.tenancy.patchBudgetSettings(collection, budget, max);
      if (egress_policy !== undefined || egress_allow !== undefined) {
        await deps.tenancy.putEgressSettings(collection, egress);
      }
      return view(collection);
    },
  );
}
