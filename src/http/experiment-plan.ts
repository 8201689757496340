/**
 * Planning an A/B experiment: one chat request per variant (the runbook as the system message, the
 * variant's agent, model, provider and jetty fields over the experiment's), each checked by the
 * run pre-flight before anything is queued, and one grader for all of them.
 */
import { z } from 'zod';
import { AppError, badRequest } from '../errors.js';
import type { JudgeSpec } from '../evaluation/types.js';
import type { RunAsset } from '../queue/catalog.js';
import type { ExperimentRecord } from '../queue/experiment-store.js';
import type { AppDeps } from './deps.js';
import { type CollectionContext, type PlannedRun, planRun } from './preflight.js';
import { type ChatRequest, jettyBlockSchema } from './schemas.js';

const variantSchema = z.looseObject({
  name: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9._:@/-]+$/, 'letters, digits and . _ : @ / - only')
    .optional()
    .describe('Its name in the table (default: agent, and :model when given)'),
  agent: z.string().optional(),
  model: z.string().max(200).optional(),
  model_provider: z.string().optional(),
  snapshot: z.string().max(200).optional(),
  jetty: z.record(z.string(), z.unknown()).optional().describe('Any other `jetty` field for this variant'),
});

export const experimentRequestSchema = z
  .object({
    runbook: z.string().min(1).optional().describe('The runbook (markdown, with its frontmatter); or `task`'),
    task: z
      .string()
      .min(1)
      .max(128)
      .optional()
      .describe("A task of the collection (/api/v1/tasks): its workflow's runbook and init_params"),
    instruction: z
      .string()
      .max(10_000)
      .optional()
      .describe("The user message (default: 'Execute the runbook.')"),
    template_variables: z.record(z.string(), z.unknown()).optional(),
    file_paths: z.array(z.string()).optional(),
    judge_model: z.string().max(200).optional().describe('The one judge of every run (rubric runbooks)'),
    judge_provider: z.string().optional(),
    jetty: z.record(z.string(), z.unknown()).optional().describe('`jetty` fields every variant gets'),
    variants: z.array(variantSchema).min(1),
    repeats: z.number().int().min(1).default(1),
  })
  .strict()
  .refine((b) => (b.runbook === undefined) !== (b.task === undefined), {
    message: 'give either runbook (the runbook text) or task (a task of the collection), not both',
    path: ['runbook'],
  });

export type ExperimentRequest = z.infer<typeof experimentRequestSchema>;
type Variant = z.infer<typeof variantSchema>;

export interface PlannedExperiment {
  variants: { name: string; plan: PlannedRun }[];
  grader: ExperimentRecord['grader'];
}

/** The bounds (EXPERIMENT_MAX_VARIANTS, EXPERIMENT_MAX_RUNS): a 400 naming the setting. */
export function checkExperimentSize(
  body: ExperimentRequest,
  bounds: { maxRuns: number; maxVariants: number },
) {
  if (body.variants.length > bounds.maxVariants) {
    throw badRequest(
      `${body.variants.length} variants is more than this server allows (EXPERIMENT_MAX_VARIANTS=${bounds.maxVariants}). Compare fewer at a time.`,
      'variants',
      'experiment_too_large',
    );
  }
  const total = body.variants.length * body.repeats;
  if (total > bounds.maxRuns) {
    throw badRequest(
      `${body.variants.length} variants × ${body.repeats} repeats is ${total} runs, more than this server allows in one experiment (EXPERIMENT_MAX_RUNS=${bounds.maxRuns}). Lower repeats or the number of variants.`,
      'repeats',
      'experiment_too_large',
    );
  }
}

export function variantName(v: Variant, i: number): string {
  return v.name ?? (v.agent ? `${v.agent}${v.model ? `:${v.model}` : ''}` : (v.model ?? `variant-${i + 1}`));
}

/** The request every variant starts from, for a runbook given as text (a task's comes from its workflow). */
export function runbookBase(body: ExperimentRequest & { runbook: string }): ChatRequest {
  return {
    messages: [
      { role: 'system', content: body.runbook },
      { role: 'user', content: body.instruction ?? 'Execute the runbook.' },
    ],
    jetty: {
      runbook: true,
      ...(body.template_variables ? { template_variables: body.template_variables } : {}),
      ...(body.file_paths ? { file_paths: body.file_paths } : {}),
    },
  } as ChatRequest;
}

function definedOnly(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

function variantRequest(base: ChatRequest, body: ExperimentRequest, v: Variant, i: number): ChatRequest {
  const { name: _n, agent, model, model_provider, snapshot, jetty, ...rest } = v;
  const extra = Object.keys(rest);
  if (extra.length) {
    throw badRequest(
      `variants[${i}] has ${extra.map((k) => `"${k}"`).join(', ')}, which a variant does not take. Put other jetty fields under variants[${i}].jetty.`,
      `variants[${i}].${extra[0]}`,
    );
  }
  const judgeField = ['judge_model', 'judge_provider'].find((k) => jetty && k in jetty);
  if (judgeField) {
    throw badRequest(
      `An experiment has one grader for every variant: set ${judgeField} on the experiment, not in variants[${i}].jetty.`,
      `variants[${i}].jetty.${judgeField}`,
      'one_grader',
    );
  }
  const merged = {
    ...definedOnly(base.jetty ?? {}),
    ...body.jetty,
    ...(body.judge_model ? { judge_model: body.judge_model } : {}),
    ...(body.judge_provider ? { judge_provider: body.judge_provider } : {}),
    ...jetty,
    runbook: true,
    ...(agent ? { agent } : {}),
    ...(model_provider ? { model_provider } : {}),
    ...(snapshot ? { snapshot } : {}),
  };
  const parsed = jettyBlockSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.');
    throw badRequest(`variants[${i}]: jetty.${field} ${issue.message}`, `variants[${i}].${field}`);
  }
  return { ...base, ...(model ? { model } : {}), jetty: parsed.data } as ChatRequest;
}

/** Every variant planned (a mistake in one is a 400 naming it, before any run is queued). */
export function planExperiment(
  base: ChatRequest,
  body: ExperimentRequest,
  deps: AppDeps,
  ctx: CollectionContext,
  assets: RunAsset[],
): PlannedExperiment {
  const names = new Set<string>();
  const variants = body.variants.map((v, i) => {
    const name = variantName(v, i);
    if (names.has(name)) {
      throw badRequest(
        `Two variants are named "${name}". Give each its own \`name\`.`,
        `variants[${i}].name`,
        'duplicate_variant',
      );
    }
    names.add(name);
    try {
      return { name, plan: planRun(variantRequest(base, body, v, i), deps, ctx, { assets }) };
    } catch (err) {
      if (err instanceof AppError && err.status === 400 && !err.param?.startsWith('variants[')) {
        throw badRequest(
          `variants[${i}] (${name}): ${err.message}`,
          `variants[${i}]`,
          err.code ?? 'invalid_request',
        );
      }
      throw err;
    }
  });
  return { variants, grader: oneGrader(variants.map((v) => v.plan)) };
}

/**
 * Same grader, different agent: every run is scored by the first variant's judge (each variant's
 * pre-flight may pick its own, e.g. the agent's provider). The kind is the runbook's, the same for all.
 */
function oneGrader(plans: PlannedRun[]): ExperimentRecord['grader'] {
  const first = plans[0]!.job.evaluation ?? null;
  const judge: JudgeSpec | null = first?.judge ? { ...first.judge, from: 'experiment' } : null;
  for (const p of plans) {
    if (p.job.evaluation) p.job.evaluation = { ...p.job.evaluation, judge };
  }
  return {
    kind: first?.kind ?? null,
    judge_model: judge?.model ?? null,
    judge_provider: judge?.provider ?? null,
  };
}
